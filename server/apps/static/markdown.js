// Streamed Markdown, rendered safely: the chat page calls renderMarkdown(reply) with the whole
// text received so far on every delta and replaces the bubble's content with the result.
// Re-rendering everything is what makes a half-received reply right: a code fence whose closing
// ``` has not arrived yet is still shown as code. Model text is untrusted, so it only ever goes
// into the page through textContent and createElement, never innerHTML: an
// `<img src=x onerror=...>` in a reply stays those characters. Deliberately small (paragraphs,
// fenced code, `inline code`); for full Markdown use a library such as marked or markdown-it and
// pass its HTML through a sanitizer such as DOMPurify before it touches the page.
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const parts = text.split(/^```[^\n]*\n?/m); // even parts are prose, odd parts are code
  parts.forEach((part, index) => {
    if (index % 2 === 1) {
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = part.replace(/\n$/, "");
      pre.append(code);
      fragment.append(pre);
      return;
    }
    for (const block of part.split(/\n{2,}/)) {
      const paragraph = block.replace(/^\n+|\n+$/g, "");
      if (!paragraph.trim()) continue;
      const p = document.createElement("p");
      paragraph.split(/`([^`\n]+)`/).forEach((piece, i) => {
        if (i % 2 === 0) p.append(piece); // append(string) adds a text node
        else p.append(Object.assign(document.createElement("code"), { textContent: piece }));
      });
      fragment.append(p);
    }
  });
  return fragment;
}

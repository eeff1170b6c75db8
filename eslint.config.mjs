// The page scripts' linter (`make lint`): ESLint's recommended rules, browser globals.
// Node.js and ESLint come from the virtualenv and package-lock.json (tools/setup.sh).
import js from "@eslint/js";
import globals from "globals";

export default [
  // What is not the course's own: installed packages, and copies a learner's tools make.
  {
    ignores: [
      ".venv/",
      "build/",
      ".course-logs/",
      "**/.ipynb_checkpoints/",
      "notebooks/mychat.backup/",
      "solutions/mychat.backup/",
    ],
  },
  js.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: "error" },
    languageOptions: { ecmaVersion: "latest", sourceType: "module", globals: globals.browser },
  },
  // Classic scripts (<script src> without type="module"): their top-level names are globals.
  {
    files: [
      "server/apps/static/app.js",
      "server/apps/static/ws_chat.js",
      "solutions/mychat/static/*.js",
      "notebooks/mychat/static/*.js",
    ],
    languageOptions: { sourceType: "script" },
  },
];

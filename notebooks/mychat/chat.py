"""Stage 4 (lesson 06)."""

from fastapi import APIRouter

router = APIRouter()

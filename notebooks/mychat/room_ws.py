"""Stage 8 (lesson 10)."""

from fastapi import APIRouter

router = APIRouter()

"""Stage 9 (lesson 11)."""

from fastapi import APIRouter

router = APIRouter()

"""Stage 7 (lesson 09)."""

from fastapi import APIRouter

router = APIRouter()

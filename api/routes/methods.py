from fastapi import APIRouter, HTTPException

from api.deps import errors, memory_budget
from core import list_methods, method_names
from core.registry import get_method

router = APIRouter(prefix="/methods", tags=["methods"])


@router.get("")
def methods() -> list[dict]:
    """Every method: description, accepted input, size limits and its parameters' JSON schema."""
    return list_methods(memory_budget()[0])


@router.get("/{name}", responses=errors(404))
def method(name: str) -> dict:
    if name not in method_names():
        raise HTTPException(404, f"unknown method {name!r}; known: {', '.join(method_names())}")
    return get_method(name).describe(memory_budget()[0])

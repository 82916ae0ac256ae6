"""A FastAPI service that keeps each user's third-party API key in the vault.

    pip install 'vaultstore_async[examples]'
    VAULT_URL=sqlite:///vault.db uvicorn examples.fastapi_app:app

The store opens in the application lifespan and reaches handlers through
a dependency. A missing, expired or wrongly unlocked key all return the
same 404 with the same body. (A missing key answers faster, because it
costs no key derivation.)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from vaultstore_async import (
    AsyncStore,
    BackendError,
    DecryptionError,
    TokenExpiredError,
    TokenNotFoundError,
    ValidationError,
)

NO_KEY = "no usable API key for this user and passphrase"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    store = AsyncStore(
        os.environ.get("VAULT_URL", "sqlite:///vault.db"),
        kdf=os.environ.get("VAULT_KDF", "default"),
    )
    async with store:
        app.state.store = store
        yield


app = FastAPI(title="API key keeper", lifespan=lifespan)


def get_store(request: Request) -> AsyncStore:
    store: AsyncStore = request.app.state.store
    return store


Store = Annotated[AsyncStore, Depends(get_store)]


class SaveKey(BaseModel):
    api_key: str
    passphrase: str


class Unlock(BaseModel):
    passphrase: str


def key_token(user_id: str) -> str:
    return f"user:{user_id}:api_key"


@app.exception_handler(TokenNotFoundError)
@app.exception_handler(TokenExpiredError)
@app.exception_handler(DecryptionError)
async def no_usable_key(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": NO_KEY})


@app.exception_handler(ValidationError)
async def invalid_input(request: Request, exc: ValidationError) -> JSONResponse:
    # Our messages name the argument and never echo its value.
    return JSONResponse(status_code=422, content={"detail": str(exc)})


@app.exception_handler(BackendError)
async def vault_unavailable(request: Request, exc: BackendError) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": "vault unavailable"})


@app.put("/users/{user_id}/api-key", status_code=204)
async def save_key(user_id: str, body: SaveKey, store: Store) -> None:
    """Store (or replace) the user's key, encrypted under their passphrase."""
    token = key_token(user_id)
    if await store.token_exists(token):
        await store.update_token(token, body.api_key, body.passphrase)
    else:
        await store.create_custom_token(token, body.api_key, body.passphrase)


@app.post("/users/{user_id}/api-key/use")
async def use_key(user_id: str, body: Unlock, store: Store) -> dict[str, str]:
    """Unlock the key and use it; here the "call" only reports which key it
    would send, by its last four characters."""
    api_key = await store.read_token(key_token(user_id), body.passphrase)
    return {"status": "called", "key_ending": api_key[-4:]}


@app.delete("/users/{user_id}/api-key", status_code=204)
async def forget_key(user_id: str, store: Store) -> None:
    if not await store.delete_token(key_token(user_id)):
        raise HTTPException(status_code=404, detail=NO_KEY)

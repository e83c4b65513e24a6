"""The connected shop's id: the one lookup sync and delivery share."""

from __future__ import annotations

from typing import Any, Protocol

from kaalwatch.errors import EtsyError
from kaalwatch.etsy.tokens import Tokens


class ShopClient(Protocol):
    def tokens(self) -> Tokens: ...
    def get_me(self) -> dict[str, Any]: ...


def shop_id(client: ShopClient) -> int:
    """The shop learnt when connecting (no request), else ``getMe``'s; an account without a shop is refused."""
    known = client.tokens().shop_id
    if known:
        return int(known)
    me = client.get_me()
    if not me.get("shop_id"):
        raise EtsyError("this Etsy account has no shop", hint="connect the shop owner's account with `kaalwatch auth`")
    return int(me["shop_id"])

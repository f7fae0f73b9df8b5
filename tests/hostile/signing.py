"""How each built-in adapter's callbacks are signed (header, development secret), for the hostile-input tests."""

from __future__ import annotations

from gateway.config import load_settings

__all__ = ["CALLBACK_SIGNING"]

_PARTNERS = load_settings(env={}).section("partners")
#: adapter → (signature header, secret its callbacks are signed with)
CALLBACK_SIGNING = {
    "iso20022_bank": ("X-Signature", _PARTNERS["iso20022_bank"]["callback_secret"]),
    "card_acquirer": ("Acquirer-Signature", _PARTNERS["card_acquirer"]["webhook_secret"]),
    "ach_nacha": ("X-Signature", _PARTNERS["ach_nacha"]["callback_secret"]),
    "instant_rtp": ("X-Signature", _PARTNERS["instant_rtp"]["response_secret"]),
}

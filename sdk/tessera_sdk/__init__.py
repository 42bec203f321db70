"""Tessera SDK: what agent and app developers import.

It depends only on httpx and a JOSE library (joserfc), never on the server's packages.
"""

from tessera_sdk.client import TesseraClient, Token
from tessera_sdk.errors import OAuthResponseError, TesseraSDKError, TokenVerificationError
from tessera_sdk.verify import AccessToken, TokenVerifier

__version__ = "0.1.0"
__all__ = [
    "AccessToken",
    "OAuthResponseError",
    "TesseraClient",
    "TesseraSDKError",
    "Token",
    "TokenVerificationError",
    "TokenVerifier",
]

"""User agents parsed with ``ua-parser`` (browser, version, OS, device type), plus automation markers and the
consistency of User-Agent Client Hints (``Sec-CH-UA*``, https://wicg.github.io/ua-client-hints/) with the
User-Agent string."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Longest user agent we parse: real ones stay under 512 characters; longer input is truncated, not refused.
MAX_UA_LENGTH = 1024

_AUTOMATION = re.compile(
    r"python-requests|python-urllib|aiohttp|httpx|curl/|wget/|go-http-client|okhttp|java/|libwww|"
    r"node-fetch|axios|undici|scrapy|phantomjs|selenium|webdriver|puppeteer|playwright|httpclient|"
    r"postmanruntime|insomnia|\bbot\b|crawler|spider",
    re.IGNORECASE,
)
_HEADLESS = re.compile(r"headless", re.IGNORECASE)
_HINT_BRAND = re.compile(r'"([^"]+)"\s*;\s*v\s*=\s*"(\d+)')


@dataclass(slots=True, frozen=True)
class UserAgentInfo:
    browser: str  # family: "Chrome"
    browser_version: str  # major: "120"
    os: str  # family: "Windows"
    os_version: str
    device_type: str  # desktop, mobile, tablet, bot, unknown
    automation: bool
    headless: bool

    @property
    def browser_label(self) -> str:
        return f"{self.browser} {self.browser_version}".strip()


def _device_type(ua: str, os_family: str, device_family: str | None) -> str:
    lowered = ua.lower()
    if device_family == "Spider":
        return "bot"
    if device_family == "iPad" or "tablet" in lowered or (os_family == "Android" and "mobile" not in lowered):
        return "tablet" if os_family in {"Android", "iOS"} or device_family == "iPad" else "desktop"
    if os_family in {"iOS", "Android"} or "mobi" in lowered:
        return "mobile"
    if os_family in {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "macOS"}:
        return "desktop"
    return "unknown"


class UserAgentParser:
    """Cached: a service sees few distinct user agents again and again."""

    def __init__(self, cache_size: int = 8192) -> None:
        from ua_parser import BestAvailableResolver, Parser, load_builtins

        # The Rust resolver (ua-parser-rs) when installed: about 20 us per new user agent instead of ~1 ms.
        self._parser = Parser(BestAvailableResolver(load_builtins()))
        self.parse = lru_cache(maxsize=cache_size)(self._parse)

    def _parse(self, ua: str) -> UserAgentInfo:
        ua = ua[:MAX_UA_LENGTH]
        if not ua.strip():
            return UserAgentInfo("", "", "", "", "unknown", automation=True, headless=False)
        result = self._parser.parse(ua)
        agent, os_, device = result.user_agent, result.os, result.device
        browser = agent.family if agent else "Other"
        version = (agent.major or "") if agent else ""
        os_family = os_.family if os_ else "Other"
        os_version = ".".join(p for p in ((os_.major or ""), (os_.minor or "")) if p) if os_ else ""
        headless = bool(_HEADLESS.search(ua))
        automation = bool(_AUTOMATION.search(ua)) or (device is not None and device.family == "Spider")
        if headless and browser.startswith("Headless"):
            browser = browser.removeprefix("Headless")
        return UserAgentInfo(
            browser=browser,
            browser_version=version,
            os=os_family,
            os_version=os_version,
            device_type="bot"
            if automation
            else _device_type(ua, os_family, device.family if device else None),
            automation=automation,
            headless=headless,
        )


def split_label(label: str) -> tuple[str, str]:
    """``"Chrome Mobile 120.0.0"`` -> ("Chrome Mobile", "120"): the RBA dataset's browser and OS columns."""
    label = label.strip()
    match = re.match(r"^(.*?)[\s/]+(\d+)(?:[.\d]*)\s*$", label)
    if match:
        return match.group(1).strip(), match.group(2)
    return label, ""


_PLATFORMS = {
    "Windows": "Windows",
    "Mac OS X": "macOS",
    "macOS": "macOS",
    "Linux": "Linux",
    "Ubuntu": "Linux",
    "Android": "Android",
    "iOS": "iOS",
    "Chrome OS": "Chrome OS",
}
_CH_BROWSERS = {"Chrome", "Chrome Mobile", "Edge", "Opera", "Samsung Internet", "Chromium", "Brave"}


def client_hint_problems(info: UserAgentInfo, hints: dict[str, str]) -> list[str]:
    """Where ``Sec-CH-UA``, ``Sec-CH-UA-Platform`` and ``Sec-CH-UA-Mobile`` contradict the User-Agent."""
    lowered = {key.lower(): value for key, value in hints.items()}
    problems: list[str] = []
    brands_header = lowered.get("sec-ch-ua")
    if brands_header is not None:
        if info.browser in {"Firefox", "Safari", "Mobile Safari", "Firefox Mobile"}:
            problems.append(f"{info.browser} does not send client hints")
        brands = {name.lower(): version for name, version in _HINT_BRAND.findall(brands_header)}
        if info.browser in _CH_BROWSERS and info.browser_version:
            versions = {v for name, v in brands.items() if "not" not in name}
            if versions and info.browser_version not in versions:
                problems.append(
                    f"client hints say version {'/'.join(sorted(versions))}, "
                    f"the user agent {info.browser_version}"
                )
    platform = lowered.get("sec-ch-ua-platform")
    if platform is not None:
        expected = _PLATFORMS.get(info.os)
        if expected and platform.strip('" ').lower() != expected.lower():
            problems.append(f"client hints say platform {platform.strip(chr(34))}, the user agent {info.os}")
    mobile = lowered.get("sec-ch-ua-mobile")
    if mobile is not None and info.device_type in {"mobile", "desktop"}:
        says_mobile = mobile.strip() == "?1"
        if says_mobile != (info.device_type == "mobile"):
            problems.append(
                f"client hints say {'mobile' if says_mobile else 'not mobile'}, "
                f"the user agent {info.device_type}"
            )
    return problems

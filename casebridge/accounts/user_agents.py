"""Naming a device from its User-Agent header, for "Where you are signed in": the browser and its
major version, and the operating system, e.g. "Chrome 131 on Windows". Rules, not a database:
the few families people actually sign in with, newest tokens first (Edge and Opera also say
"Chrome", Chrome also says "Safari"). Anything else is named honestly as unknown, never guessed."""

from __future__ import annotations

import re
from dataclasses import dataclass

# (browser, regular expression whose group 1, if any, is the major version); first match wins.
_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("Edge", r"\b(?:Edg|EdgA|EdgiOS|Edge)/(\d+)"),
        ("Opera", r"\b(?:OPR|OPiOS)/(\d+)"),
        ("Samsung Internet", r"\bSamsungBrowser/(\d+)"),
        ("Firefox", r"\b(?:Firefox|FxiOS)/(\d+)"),
        ("Chrome", r"\b(?:HeadlessChrome|Chrome|CriOS|Chromium)/(\d+)"),
        ("Safari", r"\bVersion/(\d+)[^)]*\bSafari/"),
        ("curl", r"^curl/(\d+)"),
        ("Python script", r"^python-(?:requests|httpx|urllib)"),
    )
)

_IOS_VERSION = re.compile(r"\bOS (\d+)[_.](\d+)")
_ANDROID_VERSION = re.compile(r"\bAndroid (\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Device:
    browser: str  # "Chrome 131", or "Unknown browser"
    system: str  # "Windows", "iPhone (iOS 17.1)", or "" when the header does not say

    def __str__(self) -> str:
        return f"{self.browser} on {self.system}" if self.system else self.browser


def _browser(user_agent: str) -> str:
    for name, pattern in _BROWSERS:
        found = pattern.search(user_agent)
        if found:
            return f"{name} {found.group(1)}" if found.groups() else name
    return "Unknown browser"


def _system(user_agent: str) -> str:
    # Mobile first: iPhone and Android headers also contain "like Mac OS X" and "Linux".
    for device in ("iPhone", "iPad"):
        if device in user_agent:
            version = _IOS_VERSION.search(user_agent)
            return f"{device} (iOS {version.group(1)}.{version.group(2)})" if version else device
    if "Android" in user_agent:
        version = _ANDROID_VERSION.search(user_agent)
        return f"Android {version.group(1)}" if version else "Android"
    if "Windows" in user_agent:
        # "Windows NT 10.0" is sent by Windows 10 and 11 alike: naming one would be a guess.
        return "Windows"
    if "CrOS" in user_agent:
        return "ChromeOS"
    if "Macintosh" in user_agent or "Mac OS X" in user_agent:
        # Safari on an iPad asks for desktop pages with a Mac header; it cannot be told apart.
        return "macOS"
    if "Linux" in user_agent or "X11" in user_agent:
        return "Linux"
    return ""


def describe_user_agent(user_agent: str) -> Device:
    user_agent = (user_agent or "").strip()
    if not user_agent:
        return Device("Unknown browser", "")
    return Device(_browser(user_agent), _system(user_agent))

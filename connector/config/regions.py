"""Genesys Cloud regions: the API and login hosts of each, and how `genesys` settings resolve to URLs."""

from __future__ import annotations

import re
from typing import Any

from connector.config.problems import Problem

#: Genesys Cloud regions (genesys-api.md §4.2): name -> (API host, login host).
REGIONS: dict[str, tuple[str, str]] = {
    "us_east_1": ("api.mypurecloud.com", "login.mypurecloud.com"),
    "us_east_2": ("api.use2.us-gov-pure.cloud", "login.use2.us-gov-pure.cloud"),
    "us_west_2": ("api.usw2.pure.cloud", "login.usw2.pure.cloud"),
    "ca_central_1": ("api.cac1.pure.cloud", "login.cac1.pure.cloud"),
    "sa_east_1": ("api.sae1.pure.cloud", "login.sae1.pure.cloud"),
    "mx_central_1": ("api.mxc1.pure.cloud", "login.mxc1.pure.cloud"),
    "eu_west_1": ("api.mypurecloud.ie", "login.mypurecloud.ie"),
    "eu_west_2": ("api.euw2.pure.cloud", "login.euw2.pure.cloud"),
    "eu_central_1": ("api.mypurecloud.de", "login.mypurecloud.de"),
    "eu_central_2": ("api.euc2.pure.cloud", "login.euc2.pure.cloud"),
    "me_central_1": ("api.mec1.pure.cloud", "login.mec1.pure.cloud"),
    "ap_south_1": ("api.aps1.pure.cloud", "login.aps1.pure.cloud"),
    "ap_southeast_1": ("api.apse1.pure.cloud", "login.apse1.pure.cloud"),
    "ap_southeast_2": ("api.mypurecloud.com.au", "login.mypurecloud.com.au"),
    "ap_northeast_1": ("api.mypurecloud.jp", "login.mypurecloud.jp"),
    "ap_northeast_2": ("api.apne2.pure.cloud", "login.apne2.pure.cloud"),
    "ap_northeast_3": ("api.apne3.pure.cloud", "login.apne3.pure.cloud"),
}


def normalise_region(region: str) -> str | None:
    """Accept `us_east_1`, `us-east-1`, or a region's domain (`euw2.pure.cloud`, `api.mypurecloud.ie`)."""
    key = region.strip().lower().replace("-", "_")
    if key in REGIONS:
        return key
    host = region.strip().lower().removeprefix("https://").removeprefix("api.").removeprefix("login.")
    for name, (api_host, _) in REGIONS.items():
        if api_host.removeprefix("api.") == host:
            return name
    return None


def resolve_urls(data: dict[str, Any]) -> dict[str, Any]:
    """Fill `api_base_url` / `login_base_url` from the region unless given explicitly."""
    data = {k: v for k, v in data.items() if not (k.endswith("_base_url") and v in (None, ""))}
    api, login = data.get("api_base_url"), data.get("login_base_url")
    region = data.get("region") or None
    if region is not None:
        name = normalise_region(str(region))
        if name is None:
            data["region"] = Problem(
                f"unknown region {region!r}; use one of {', '.join(REGIONS)}, "
                "or set genesys.api_base_url and genesys.login_base_url"
            )
            return data
        data["region"] = name
        api = api or f"https://{REGIONS[name][0]}"
        login = login or f"https://{REGIONS[name][1]}"
    if api is not None and login is None and "//api." in str(api):
        login = str(api).replace("//api.", "//login.", 1)
    if api is None or login is None:
        missing = "genesys.api_base_url" if api is None else "genesys.login_base_url"
        data["region"] = Problem(
            "set genesys.region (e.g. us_east_1) or both genesys.api_base_url and genesys.login_base_url "
            f"({missing} is missing)"
        )
        return data
    for key, url in (("api_base_url", api), ("login_base_url", login)):
        if re.match(r"^https?://[^/\s]+", str(url)):
            data[key] = str(url).rstrip("/")
        else:
            data[key] = Problem(f"expected an http(s) URL like https://api.mypurecloud.com (got {url!r})")
    return data

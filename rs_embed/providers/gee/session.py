"""One Earth Engine session per process: credentials, project, endpoint, in-flight limit.

Earth Engine's Python client keeps its state in process globals, so rs_embed
initialises it once (under a lock) and every provider instance and worker thread
shares that session. A session the user opened themselves with ``ee.Initialize``
(any credentials) is adopted as it is: its credentials and project stay theirs.

Credentials are found by the client itself (``ee.Initialize(credentials="persistent")``
reads ``ee.oauth.get_credentials_path()`` and falls back to ``google.auth.default()``),
so every setup the client supports works; rs_embed only translates its refusal into
steps to take. The cheap, offline :func:`availability` check that ``backend="auto"``
asks looks in the same places through the same libraries' functions.

The project is taken from, in order: the ``project`` argument, ``EE_PROJECT``,
``GOOGLE_CLOUD_PROJECT``, then Earth Engine's own configured default
(``earthengine set_project``, or the quota project of gcloud's application
default credentials).

One retry layer: rs_embed retries requests itself (``pixels``: a budget per fetch,
outside the in-flight limit), so the session it uses, adopted ones included, has the
client's own retries switched off (``ee.data.setMaxRetries(0)``) and its request
deadline set to the fetch timeout (``ee.data.setDeadline``).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ...errors import ProviderError
from ..base import DEFAULT_FETCH_TIMEOUT_S

#: Earth Engine's endpoint for many small automated requests against stored assets.
HIGH_VOLUME_URL = "https://earthengine-highvolume.googleapis.com"
STANDARD_URL = "https://earthengine.googleapis.com"
#: Earth Engine allows this many concurrent requests per project by default.
DEFAULT_MAX_CONCURRENT = 40
#: Longest wait for one answer (the export engine's ``fetch_timeout_s`` default).
DEFAULT_TIMEOUT_S = DEFAULT_FETCH_TIMEOUT_S

PROJECT_ENV_VARS = ("EE_PROJECT", "GOOGLE_CLOUD_PROJECT")

INSTALL_HINT = "pip install 'rs_embed[gee]'"

AUTH_HELP = (
    "Authenticate once on this machine with\n\n"
    "    earthengine authenticate\n\n"
    "(or ee.Authenticate() in a notebook), then name the Google Cloud project "
    "registered for Earth Engine in one of these ways:\n"
    "  - rs_embed.providers.gee.initialize(project='my-project')\n"
    "  - the EE_PROJECT (or GOOGLE_CLOUD_PROJECT) environment variable\n"
    "  - earthengine set_project my-project\n"
    "See https://developers.google.com/earth-engine/guides/auth\n"
    "Without Earth Engine, pass backend='local' (the embedded Sentinel-2 sample or your own "
    "rasters) or backend='auto'.")


def import_ee():
    """The ``ee`` module, or a ProviderError naming the extra to install."""
    try:
        import ee
    except ImportError:
        raise ProviderError(
            f"backend='gee' needs the Earth Engine client: {INSTALL_HINT}") from None
    return ee


# ------------------------------------------------------------------- in-flight limit


class InFlightLimiter:
    """A counting gate shared by every thread that talks to one project.

    Unlike a semaphore its limit can be changed while requests are running, and it
    records the peak number of requests in flight (benchmarks and tests read it).
    """

    def __init__(self, limit: int):
        self._cond = threading.Condition()
        self._limit = _check_limit(limit)
        self.in_flight = 0
        self.peak = 0

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        with self._cond:
            self._limit = _check_limit(value)
            self._cond.notify_all()

    def __enter__(self):
        with self._cond:
            while self.in_flight >= self._limit:
                self._cond.wait()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        return self

    def __exit__(self, *exc):
        with self._cond:
            self.in_flight -= 1
            self._cond.notify()
        return False

    def reset_peak(self) -> None:
        with self._cond:
            self.peak = self.in_flight


def _check_limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_concurrent must be a positive integer, got {value!r}")
    return value


_limiters: Dict[str, InFlightLimiter] = {}
_max_concurrent = DEFAULT_MAX_CONCURRENT


def limiter(project: Optional[str]) -> InFlightLimiter:
    """The process-wide limiter of ``project`` (created on first use)."""
    key = project or ""
    with _lock:
        lim = _limiters.get(key)
        if lim is None:
            lim = _limiters[key] = InFlightLimiter(_max_concurrent)
        return lim


def set_max_concurrent(n: int) -> None:
    """Change how many requests may be in flight per project in this process.

    Earth Engine's default quota is 40 concurrent requests per project; raise it only
    if your project was granted more.
    """
    global _max_concurrent
    n = _check_limit(n)
    with _lock:
        _max_concurrent = n
        for lim in _limiters.values():
            lim.limit = n


# -------------------------------------------------------------------------- session


@dataclass(frozen=True)
class Session:
    """What rs_embed knows about the Earth Engine session it sends requests through."""

    project: Optional[str]
    url: str
    adopted: bool  # True when the user called ee.Initialize themselves
    started_at: float

    @property
    def endpoint(self) -> str:
        return "high-volume" if self.url.rstrip("/") == HIGH_VOLUME_URL else self.url

    def to_dict(self) -> dict:
        return {"project": self.project, "endpoint": self.endpoint}


_lock = threading.RLock()
_session: Optional[Session] = None


def current_session() -> Optional[Session]:
    return _session


def resolve_project(project: Optional[str] = None) -> Optional[str]:
    """The project rs_embed will ask Earth Engine to use (None: Earth Engine's default)."""
    if project is not None:
        if not isinstance(project, (str, int)) or isinstance(project, bool) or not str(project).strip():
            raise ProviderError(f"project must be a Google Cloud project id, got {project!r}")
        return str(project).strip()
    for var in PROJECT_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


def initialize(project: Optional[str] = None, *, high_volume: bool = True,
               timeout_s: float = DEFAULT_TIMEOUT_S, credentials: Any = "persistent",
               http_transport: Any = None, force: bool = False) -> Session:
    """Initialise Earth Engine for this process (once; later calls return the session).

    ``high_volume`` (default) sends requests to the high-volume endpoint, which Google
    recommends for many parallel requests against stored assets. ``timeout_s`` bounds
    one request (a timed-out request is retried); an export's ``fetch_timeout_s``
    replaces it for its requests. ``credentials`` (default: what the client finds
    itself) and ``http_transport`` are passed to ``ee.Initialize`` (tests use a replayed
    transport). A different ``project`` or ``force=True`` re-initialises.
    """
    global _session
    ee = import_ee()
    wanted = resolve_project(project)
    url = HIGH_VOLUME_URL if high_volume else STANDARD_URL
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise ProviderError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    with _lock:
        s = _session
        if s is not None and not force and (project is None or wanted == s.project):
            return s
        if (s is None and not force and http_transport is None and ee.data.is_initialized()
                and (project is None or wanted == _ee_project(ee))):
            try:
                _tune(ee, timeout_s)
            except Exception as exc:
                raise _init_error(exc, wanted) from exc
            _session = _adopt(ee)  # the user's own ee.Initialize wins
            return _session
        try:
            ee.Initialize(credentials=credentials, project=wanted, url=url,
                          http_transport=http_transport)
            _tune(ee, timeout_s)
        except Exception as exc:  # the client raises many types; translate them once
            raise _init_error(exc, wanted) from exc
        _session = Session(project=_ee_project(ee) or wanted, url=url, adopted=False,
                           started_at=time.time())
        return _session


_request_timeout_s: Optional[float] = None


def _tune(ee, timeout_s: float) -> None:
    """The client's retries off (rs_embed's are the only layer) and its request deadline
    ``timeout_s`` (called with the lock held)."""
    global _request_timeout_s
    ee.data.setMaxRetries(0)
    ms = int(round(float(timeout_s) * 1000))
    state = _ee_state(ee)
    if state is None or getattr(state, "deadline_ms", None) != ms:
        ee.data.setDeadline(ms)  # rebuilds the client's HTTP resource with this timeout
    _request_timeout_s = float(timeout_s)


def use_request_timeout(timeout_s: float) -> None:
    """Make requests of this process time out after ``timeout_s`` (an export's
    ``fetch_timeout_s``); cheap when it is already so."""
    if _request_timeout_s == float(timeout_s):
        return
    ee = import_ee()
    with _lock:
        if _request_timeout_s != float(timeout_s):
            try:
                _tune(ee, timeout_s)
            except Exception as exc:
                from .pixels import classify

                raise classify(exc, "setting the Earth Engine request timeout")[0] from exc


def reset() -> None:
    """Forget the session (the next fetch initialises again)."""
    global _session, _request_timeout_s
    with _lock:
        _session = None
        _request_timeout_s = None


def _adopt(ee) -> Session:
    state = _ee_state(ee)
    url = (getattr(state, "cloud_api_base_url", None) or STANDARD_URL) if state else STANDARD_URL
    return Session(project=_ee_project(ee), url=url, adopted=True, started_at=time.time())


def _ee_state(ee):
    try:
        from ee import _state
        return _state.get_state()
    except Exception:  # pragma: no cover - older clients keep state elsewhere
        return None


def _ee_project(ee) -> Optional[str]:
    state = _ee_state(ee)
    project = getattr(state, "cloud_api_user_project", None) if state else None
    return None if project in (None, "earthengine-legacy") else str(project)


# ---------------------------------------------------------------- credentials check


def _ee_credentials() -> dict:
    """What ``earthengine authenticate`` stored, read by the client's own function
    (``ee.oauth.get_credentials_arguments``, at ``ee.oauth.get_credentials_path()``)."""
    try:
        import ee

        return ee.oauth.get_credentials_arguments() or {}
    except (OSError, ValueError, TypeError, AttributeError, ImportError):
        return {}


def _adc_path() -> str:
    """gcloud's application-default credentials file, as google.auth locates it."""
    from google.auth import _cloud_sdk

    return _cloud_sdk.get_application_default_credentials_path()


def _on_gce() -> bool:
    """On Google Compute Engine / Colab-like VMs (google.auth's offline DMI check)."""
    try:
        from google.auth.compute_engine import _metadata

        return bool(_metadata.detect_gce_residency_linux())
    except Exception:  # pragma: no cover - older google-auth
        return False


def credentials_source() -> Optional[str]:
    """Where the client would find credentials, without any network call: the places
    ``ee.data.get_persistent_credentials`` and ``google.auth.default()`` look, found by
    their own functions (None: nowhere offline; the client may still find some)."""
    if _ee_credentials().get("refresh_token"):
        return "earthengine"
    from google.auth import environment_vars

    sa = os.environ.get(environment_vars.CREDENTIALS, "").strip()
    if sa and os.path.isfile(sa):
        return "GOOGLE_APPLICATION_CREDENTIALS"
    if os.path.isfile(_adc_path()):
        return "gcloud"
    if _on_gce():
        return "metadata"
    return None


def configured_project() -> Optional[str]:
    """The project Earth Engine itself would default to (credentials files only)."""
    project = _ee_credentials().get("quota_project_id")
    if project:
        return str(project)
    from google.auth import environment_vars

    sa = os.environ.get(environment_vars.CREDENTIALS, "").strip()
    if sa and os.path.isfile(sa):
        try:
            import google.auth

            creds, pid = google.auth.load_credentials_from_file(sa)
            pid = getattr(creds, "quota_project_id", None) or pid
            if pid:
                return str(pid)
        except Exception:  # an unreadable file: the client will say so when it starts
            pass
    try:
        import ee

        project = ee.oauth.get_appdefault_project()
    except (OSError, ValueError, ImportError, AttributeError):
        project = None
    return str(project) if project else None


def _init_error(exc: Exception, project: Optional[str]) -> ProviderError:
    text = str(exc)
    low = text.lower()
    if ("no project found" in low or "not been used in project" in low
            or ("project" in low and "permission" in low)):
        where = f"project {project!r}" if project else "no project was set"
        return ProviderError(
            f"Earth Engine could not start ({where}): {text.strip()}\n" + AUTH_HELP)
    if "please authorize access" in low or "defaultcredentialserror" in low:
        return ProviderError("Earth Engine has no credentials on this machine. " + AUTH_HELP)
    if ("authorize" in low or "credentials" in low or "refresh" in low
            or "invalid_grant" in low or "unauthenticated" in low):
        return ProviderError(f"Earth Engine rejected the stored credentials: {text.strip()}\n" + AUTH_HELP)
    transient = isinstance(exc, (TimeoutError, ConnectionError, OSError)) or "timed out" in low
    return ProviderError(f"Earth Engine could not be initialised: {type(exc).__name__}: {text}",
                         transient=transient)


def availability():
    """``True`` when Earth Engine can be used now; else why not (``""``: not installed).

    Cheap and offline: it looks for an open session, a credentials file and a project;
    it never contacts Google (an expired token shows up at the first fetch instead).
    """
    try:
        import ee
    except ImportError:
        return ""
    if _session is not None:
        return True
    try:
        if ee.data.is_initialized():
            return True
    except Exception:  # pragma: no cover - defensive against client changes
        pass
    source = credentials_source()
    if source is None:
        return ("Earth Engine is installed but not authenticated "
                "(run `earthengine authenticate`, then set EE_PROJECT)")
    if source != "metadata" and resolve_project() is None and configured_project() is None:
        return ("Earth Engine has credentials but no project "
                "(set EE_PROJECT or run `earthengine set_project my-project`)")
    return True


__all__ = ["initialize", "availability", "current_session", "reset", "Session",
           "set_max_concurrent", "limiter", "InFlightLimiter", "resolve_project", "use_request_timeout",
           "credentials_source", "configured_project",
           "HIGH_VOLUME_URL", "STANDARD_URL", "DEFAULT_MAX_CONCURRENT", "AUTH_HELP"]

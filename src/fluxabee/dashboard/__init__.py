"""A web dashboard for the people who run fluxabee (``pip install 'fluxabee[dashboard]'``).

``create_app(config)`` returns an ASGI app (Starlette): the overview of every stream and
group (length, lag, pending, oldest pending, dead letters, consumers, in/out rates of the
last 15 minutes sampled by the dashboard itself), a page per stream (groups, consumers,
the pending list with claim / ack / dead-letter / delete, the newest entries with a live
tail, a trim with a preview that refuses to cut what a group still needs), the dead letters
(replay, delete) and the consumers (prune). Every action asks for a confirmation, says what
it did and is logged (logger ``fluxabee.dashboard``).

- ``read_only=True``: no action is shown, and the server answers them with HTTP 403.
- ``token="..."``: every request needs it, as the cookie the login form sets or as
  ``Authorization: Bearer <token>``.
- Mount it under any prefix (``app.mount("/fluxabee", dashboard)``); it opens its Redis
  connections on the first request. A host app's lifespan does not run a mounted app's:
  call ``await dashboard.aclose()`` at shutdown to close them.

The page is server-rendered HTML with SVG charts and a small hand-written script and
stylesheet: nothing is loaded from elsewhere, so it works offline.
"""

from ._app import Dashboard, create_app

__all__ = ["Dashboard", "create_app"]

"""The operator console: the night at a glance and in hand, in a browser (docs/console.md).

A Starlette application served by uvicorn, with server-rendered pages and server-sent events. It
reads and acts through the same modules as the command line (`operate`, `announce`, `status`,
`audit`), behind a login with roles and CSRF tokens. Importing this package is cheap: the web
framework is imported by `broadcaster.console.app` and `broadcaster.console.server` only.
"""

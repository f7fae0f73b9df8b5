"""The operations console: server-rendered pages under ``/console`` over the API's services (docs/console.md)."""

"""PixyProxy as a Model Context Protocol server: the tools and resources (tools.py, server.py), served at
/mcp in the app (http_app.py, calling the use cases through calls.py) or over stdio by `pixyproxy mcp`
(stdio.py, forwarding to a running PixyProxy through the HTTP client)."""

"""The operators' web dashboard: runs, a run's timeline, history, queues and workers, limits,
updated live. Served by each server process on its own HTTP port, reading through the service
layer (no gRPC hop); server-rendered pages (aiohttp and Jinja2) with a little plain
JavaScript, every asset shipped in the package (no CDN)."""

"""`pllm serve`: one resident process per home holding the models and memory, reached over a Unix socket.

protocol.py  the JSON Lines messages (docs/serve.md)
server.py    the socket, the lock, the one worker thread
jobs.py      a request for the worker, and the bounded queue it waits in
engine.py    what the worker does for each request, on the models and memories it holds
client.py    finding a running server and talking to it (imports nothing heavy)
remote.py    ask, chat, search and refresh through the server, shaped as the in-process objects the CLI renders
"""

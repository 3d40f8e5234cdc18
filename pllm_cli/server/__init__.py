"""`pllm serve`: one resident process per home holding the models and memory, reached over a Unix socket.

protocol.py  the JSON Lines messages (docs/serve.md)
server.py    the socket, the lock, the queue and the one worker thread
engine.py    what the worker does for each request, on the models and memories it holds
client.py    finding a running server and talking to it (imports nothing heavy)
remote.py    ask, chat and search through the server, shaped as the in-process objects the CLI renders
"""

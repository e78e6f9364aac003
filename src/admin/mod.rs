//! The local admin socket: HTTP/1.1 with JSON over a Unix domain socket.

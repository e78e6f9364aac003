//! Commands that talk to a running daemon through its admin socket.

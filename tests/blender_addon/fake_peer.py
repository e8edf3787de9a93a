"""A stand-in backend for what no real backend here can do (speak another protocol version).

A real ROUTER socket on a free port, answering each message with ``reply(frames) -> frames``
from a thread; the ``peer_factory`` fixture starts them and closes them after the test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import zmq

from shared_protocol.framing import split_identity
from tests.support.backend_process import free_port


class FakePeer:
    """A ROUTER that answers every message with ``reply(frames) -> frames`` (a real socket)."""

    def __init__(self, reply) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.socket = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.bind(self.address)
        self.reply = reply
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        while not self.stop.is_set():
            if self.socket.poll(50):
                identity, frames = split_identity(self.socket.recv_multipart())
                self.socket.send_multipart([identity, *self.reply(frames)])


@pytest.fixture
def peer_factory() -> Iterator:
    peers: list[FakePeer] = []

    def make(reply) -> FakePeer:
        peer = FakePeer(reply)
        peer.thread.start()
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.stop.set()
        peer.thread.join(2)
        peer.socket.close(0)

"""The golemsync devnet: a yagna-compatible Golem network on loopback.

``Devnet`` runs it (in-process or as a child process); ``DevnetConfig``/``ProviderSpec`` say
what it simulates. One concept per module:

* ``network``    ``Devnet``: start/stop, env, ``ledger()``
* ``node``       wires every service behind one server; the provider-side reactions
* ``server``     stdlib HTTP/1.1 server, one named thread per connection, auth, fault injection
* ``http``       requests, responses, daemon-style errors, the router; ``sse`` event streams
* ``identity``   ``/me`` and ``/version/get``
* ``market``     subscriptions, offers, negotiation; ``constraints`` the LDAP-style matcher
* ``providers``  simulated provider identities and offers; ``config`` what to simulate
* ``agreements`` the agreement state machine and its events
* ``activities`` activity routes over the exe-unit seam (``exeunit``, ``errors``);
  ``exescript`` the daemon-side parse of exec scripts
* ``payments``   accounts, allocations, demand decorations; ``invoicing`` debit notes/invoices
* ``agent``      the providers' background thread; ``events`` persistent event logs
* ``faults``     seeded RNGs and HTTP fault draws; ``gftpstore`` the gftp stand-in's store
* ``gsb``        services bound through the GSB API and the calls to them; ``gsbwire`` their
  flexbuffers frames, ``gsbapi`` the routes, ``gsbsocket`` the WebSocket, ``gsbtransfer``
  gftp's messages as the exe-unit's ``transfer`` speaks them
"""

from __future__ import annotations

from golemsync.devnet.config import DevnetConfig, ProviderSpec
from golemsync.devnet.network import Devnet

__all__ = ["Devnet", "DevnetConfig", "ProviderSpec"]

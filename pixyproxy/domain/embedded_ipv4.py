"""The IPv4 addresses an IPv6 address carries, so that an address check judges what it really reaches.

A packet to one of these IPv6 forms ends up at an IPv4 address (through a translator, a relay or a dual
stack), so `http://[64:ff9b::7f00:1]/` is as much loopback as `http://127.0.0.1/`.
"""

import ipaddress

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address

_LAST_32_BITS = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated, still routed by some stacks)
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, the well-known prefix
)
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # NAT64, local use: the operator picks the length
# RFC 6052's embeddings for prefixes of 48, 56, 64 and 96 bits: the byte offsets of the four IPv4 bytes
# (byte 8, the "u" octet, is always skipped).
_NAT64_BYTE_OFFSETS = ((6, 7, 9, 10), (7, 9, 10, 11), (9, 10, 11, 12), (12, 13, 14, 15))
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def embedded_ipv4(address: IPv6) -> tuple[IPv4, ...]:
    """Every IPv4 address `address` may lead to; empty for an IPv6 address that embeds none."""
    packed = address.packed
    if any(address in network for network in _LAST_32_BITS):
        return (IPv4(packed[12:]),)
    if address in _LOCAL_NAT64:
        return tuple(IPv4(bytes(packed[i] for i in offsets)) for offsets in _NAT64_BYTE_OFFSETS)
    if address in _SIX_TO_FOUR:
        return (IPv4(packed[2:6]),)
    if address in _TEREDO:
        # The Teredo server, and the client's address (stored inverted) that the relay delivers to.
        client = IPv4(bytes(b ^ 0xFF for b in packed[12:]))
        return (IPv4(packed[4:8]), client)
    return ()

#!/usr/bin/env python3
# gen_tcp_corpus.py - writes the fuzz_tcp seed scripts (format: the comment atop fuzz_tcp.cc) into corpus/tcp/.
import os
import struct
import sys

FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
# seq bases: 0 peer's next, 1 stack's last ACK, 2 peer ISS, 3 literal; ack bases: 0 stack's
# highest sent, 1 stack ISS+1, 2 peer's last ACK, 3 literal. Scale in bits 2-3.
MSS, WS, SACKOK, TS, TS_STALE, SACK, URG, BIG = 1, 2, 4, 8, 16, 32, 64, 128


def header(scenario, cfg, port=1, iss=0, ts=0, app=0, peer=0):
    return bytes([scenario, cfg, port, iss, ts, app, peer])


def seg(flags, sm=0, sd=0, am=0, ad=0, win=255, opts=0, param=0, length=0, seq32=None, ack32=None):
    b = bytes([2, flags, sm, sd & 0xff])
    if sm & 3 == 3:
        b += struct.pack('>I', seq32)
    b += bytes([am, ad & 0xff])
    if am & 3 == 3:
        b += struct.pack('>I', ack32)
    return b + bytes([win, opts, param, length])


def adv(ms): return bytes([0, ms])
def advq(q): return bytes([1, q])
def write(h, n): return bytes([5, h, n])
def read(h, n): return bytes([6, h, n])
def shutdown(h, how): return bytes([7, h, how])
def close(h): return bytes([8, h])
def accept(): return bytes([9])
def linger0(h): return bytes([10, h])
def timer(): return bytes([11])
def raw(pkt, repair): return bytes([4 if repair else 3, len(pkt)]) + pkt


def raw_syn(sport, dport, seq):
    tcp = struct.pack('>HHIIBBHHH', sport, dport, seq, 0, 5 << 4, SYN, 65535, 0, 0)
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0,
                     bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]))
    return ip + tcp  # checksums left zero: opcode 4 repairs them


T = TS  # segments after a timestamp-negotiating handshake must carry TSopt (RFC 7323 §3.2)
SEEDS = {
    'listen_handshake_data_close': header(0, 0x0f) +
        seg(SYN, 2, 0, 0, 0, opts=MSS | WS | SACKOK | TS, param=0xb7) +
        seg(ACK, opts=T) + accept() + seg(ACK | PSH, opts=T, length=100) + read(0, 4) +
        write(0, 3) + adv(50) + seg(ACK, opts=T) + seg(FIN | ACK, opts=T) + read(0, 4) +
        close(1) + seg(ACK, opts=T) + advq(20),
    'active_open_rst': header(1, 0x03) +
        seg(SYN | ACK, 2, 0, 1, 0, opts=MSS | TS, param=0xb6) + write(0, 10) + adv(1) +
        seg(RST, 1, 0, opts=T),
    'simultaneous_close': header(2, 0x87, app=2, peer=2) + read(0, 8) + shutdown(0, 1) +
        seg(FIN | ACK, 0, 0, 2, 0, opts=T) + seg(ACK, opts=T) + advq(12) + timer(),
    'zero_window_persist': header(3, 0x83, app=100) + seg(ACK, win=0, opts=T) + advq(8) +
        timer() + timer() + seg(ACK, win=0, opts=T) + timer() + seg(ACK, win=255, opts=T) +
        adv(10) + seg(ACK, opts=T) + close(0),
    'syn_sent_timeout': header(1, 0x07) + timer() * 10,
    'out_of_order_sack': header(2, 0x87) + seg(ACK | PSH, 0, 100, opts=T, length=50) +
        seg(ACK | PSH, 0, -100, opts=T, length=100) + read(0, 4) + adv(40) + read(0, 4),
    'paws_stale_ts': header(3, 0x82, peer=4) + seg(ACK | PSH, opts=TS | TS_STALE, length=20) +
        seg(ACK | PSH, opts=T, length=20) + read(0, 8),
    'raw_syn_other_port': header(0, 0x00) + raw(raw_syn(50000, 80, 1000), True) + accept() +
        raw(raw_syn(50001, 81, 5), True) + raw(b'\x45\x00\x00', False) + adv(5),
    'keepalive': header(3, 0x92) + advq(60) + timer() + seg(ACK, opts=T) + timer() + timer() +
        timer() + timer(),
    'challenge_ack_rst': header(2, 0x87, app=1, peer=1) + seg(SYN, 0, 0, opts=T) +
        seg(RST, 1, 1, opts=T) + seg(RST, 1, 0) + read(0, 1),
    'sack_recovery': header(3, 0xe7, app=40) + adv(1) +
        seg(ACK, 0, 0, 0 | 4, -8, opts=T | SACK, param=0x48) +
        seg(ACK, 0, 0, 0 | 4, -8, opts=T | SACK, param=0x48) +
        seg(ACK, 0, 0, 0 | 4, -8, opts=T | SACK, param=0x48) + timer() + seg(ACK, opts=T),
    'linger_abort': header(2, 0x00, app=3, peer=3) + linger0(0) + close(1) + adv(1),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus', 'tcp')
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name + '.bin'), 'wb') as f:
        f.write(data)

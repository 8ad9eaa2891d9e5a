// golden_frames.h - real frames captured from Linux 6.x on a veth pair (checksum offload
// off), 10.0.0.1:39116 -> 10.0.0.2:5001; the same bytes are in tests/fuzz/corpus/wire/.
#pragma once

namespace utcp::test {

// SYN: MSS 1460, SACK-permitted + timestamps, NOP + window scale 10.
inline constexpr const char* kLinuxSyn =
    "4640e402ecb2 96223603d1dd 0800"
    "4500003c19d5400040060ce50a0000010a000002"
    "98cc1389e7504a5d00000000a002faf0db8f0000"
    "020405b40402080a81c3fdb2000000000103030a";
inline constexpr const char* kLinuxSynAck =
    "96223603d1dd 4640e402ecb2 0800"
    "4500003c00004000400626ba0a0000020a000001"
    "138998ccd828baa3e7504a5ea012fe88a8290000"
    "020405b40402080ad228cac781c3fdb20103030a";
// PSH|ACK with "ping", NOP NOP + timestamps.
inline constexpr const char* kLinuxData =
    "4640e402ecb2 96223603d1dd 0800"
    "4500003819d7400040060ce70a0000010a000002"
    "98cc1389e7504a5ed828baa48018003ff6640000"
    "0101080a81c3fdb3d228cac7"
    "70696e67";
inline constexpr const char* kLinuxUdp =
    "4640e402ecb2 96223603d1dd 0800"
    "450000258865400040119e600a0000010a000002"
    "82f5138a00112bf3"
    "68656c6c6f20756470";
inline constexpr const char* kLinuxArpRequest =
    "ffffffffffff 96223603d1dd 0806"
    "0001080006040001 96223603d1dd 0a000001 000000000000 0a000002";
inline constexpr const char* kLinuxArpReply =
    "96223603d1dd 4640e402ecb2 0806"
    "0001080006040002 4640e402ecb2 0a000002 96223603d1dd 0a000001";

}  // namespace utcp::test

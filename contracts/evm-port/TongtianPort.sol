// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

interface IERC20 {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// One end of a Tongtian channel on an EVM chain, with ICS-20 token
/// transfer for ERC-20 tokens (escrowed here, vouchers on the Tongtian
/// chain, released when they come back).
///
/// Trust: the Tongtian side checks this contract's storage with
/// eth_getProof proofs under block roots its attesters signed; this side
/// checks the Tongtian chain's packets and acknowledgements by the same
/// attesters' secp256k1 signatures (a threshold of them). It trusts the
/// attesters, not the relayer that calls it.
///
/// Storage layout the Tongtian side proves: `store` (slot 0) maps
/// keccak256(abi.encodePacked(kind, "/", channel, "/", uint64 seq)) to
/// keccak256 of the value a Tongtian chain would keep there (`commit`:
/// the packet's commitment; `receipt`: 0x01; `ack`: the Borsh ack).
contract TongtianPort {
    mapping(bytes32 => bytes32) public store;

    struct Packet {
        uint64 sequence;
        string sourcePort;
        string sourceChannel;
        string destPort;
        string destChannel;
        bytes data;
        uint64 timeoutHeight;
        uint64 timeoutMs;
    }

    string public port;
    string public channel;
    string public counterpartyPort;
    string public counterpartyChannel;
    uint64 public counterpartyChainId;
    uint256 public threshold;
    mapping(address => bool) public isAttester;
    uint64 public nextSequence = 1;
    mapping(address => uint256) public escrowed;

    event SendPacket(uint64 sequence, bytes packet);
    event RecvPacket(uint64 sequence, bytes ack);
    event AcknowledgePacket(uint64 sequence, bool success);
    event TimeoutPacket(uint64 sequence);

    error NotAttested(uint256 signers, uint256 needed);
    error WrongChannel();
    error AlreadyReceived(uint64 sequence);
    error TimedOut(uint64 sequence);
    error UnknownPacket(uint64 sequence);
    error BadAmount();

    constructor(
        string memory channel_,
        string memory counterpartyPort_,
        string memory counterpartyChannel_,
        uint64 counterpartyChainId_,
        address[] memory attesters_,
        uint256 threshold_
    ) {
        require(threshold_ > 0 && threshold_ <= attesters_.length, "bad threshold");
        port = hexAddress(address(this));
        channel = channel_;
        counterpartyPort = counterpartyPort_;
        counterpartyChannel = counterpartyChannel_;
        counterpartyChainId = counterpartyChainId_;
        threshold = threshold_;
        for (uint256 i = 0; i < attesters_.length; i++) {
            isAttester[attesters_[i]] = true;
        }
    }

    // ---- sending (escrow an ERC-20) ----

    /// Escrow `amount` of `token` and send it to `receiver` (a 20-byte
    /// Tongtian address) on the other chain: the packet's sequence.
    function sendTransfer(address token, uint256 amount, bytes20 receiver, uint64 timeoutHeight, uint64 timeoutMs)
        external
        returns (uint64 seq)
    {
        if (amount == 0 || amount >= 2 ** 128) revert BadAmount();
        require(timeoutHeight != 0 || timeoutMs != 0, "a packet needs a timeout");
        require(IERC20(token).transferFrom(msg.sender, address(this), amount), "transferFrom failed");
        escrowed[token] += amount;
        bytes memory data =
            abi.encodePacked(str(bytes(hexAddress(token))), le(amount, 16), bytes20(msg.sender), receiver, hex"00");
        seq = nextSequence++;
        Packet memory p =
            Packet(seq, port, channel, counterpartyPort, counterpartyChannel, data, timeoutHeight, timeoutMs);
        bytes memory encoded = encodePacket(p);
        store[path("commit", seq)] = keccak256(abi.encodePacked(keccak256(encoded)));
        emit SendPacket(seq, encoded);
    }

    /// The other chain acknowledged packet `p` with `ack` (Borsh), as the
    /// attesters sign: an error ack refunds.
    function acknowledgePacket(Packet calldata p, bytes calldata ack, bytes[] calldata sigs) external {
        bytes32 c = pending(p);
        attested(keccak256(abi.encodePacked("tongtian/ack/v1", counterpartyChainId, c, keccak256(ack))), sigs);
        delete store[path("commit", p.sequence)];
        bool success = ack.length > 0 && ack[0] == 0x00;
        if (!success) refund(p.data);
        emit AcknowledgePacket(p.sequence, success);
    }

    /// Packet `p` timed out on the other chain unreceived, as the
    /// attesters sign: refund.
    function timeoutPacket(Packet calldata p, bytes[] calldata sigs) external {
        bytes32 c = pending(p);
        attested(keccak256(abi.encodePacked("tongtian/timeout/v1", counterpartyChainId, c)), sigs);
        delete store[path("commit", p.sequence)];
        refund(p.data);
        emit TimeoutPacket(p.sequence);
    }

    // ---- receiving ----

    /// Deliver packet `p` from the other chain, which the attesters sign.
    function recvPacket(Packet calldata p, bytes[] calldata sigs) external {
        if (
            !eq(p.destPort, port) || !eq(p.destChannel, channel) || !eq(p.sourcePort, counterpartyPort)
                || !eq(p.sourceChannel, counterpartyChannel)
        ) revert WrongChannel();
        bytes32 c = keccak256(encodePacket(p));
        attested(keccak256(abi.encodePacked("tongtian/packet/v1", counterpartyChainId, c)), sigs);
        bytes32 receipt = path("receipt", p.sequence);
        if (store[receipt] != 0) revert AlreadyReceived(p.sequence);
        if (
            (p.timeoutHeight != 0 && block.number >= p.timeoutHeight)
                || (p.timeoutMs != 0 && block.timestamp * 1000 >= p.timeoutMs)
        ) revert TimedOut(p.sequence);
        store[receipt] = keccak256(hex"01");
        bytes memory ack;
        try this.onRecv(p.data, p.sourcePort, p.sourceChannel) returns (bytes memory result) {
            ack = abi.encodePacked(hex"00", str(result));
        } catch Error(string memory reason) {
            ack = abi.encodePacked(hex"01", str(bytes(reason)));
        } catch {
            ack = abi.encodePacked(hex"01", str(bytes("transfer refused")));
        }
        store[path("ack", p.sequence)] = keccak256(ack);
        emit RecvPacket(p.sequence, ack);
    }

    /// The application (called by this contract only, so a refusal undoes
    /// its writes and becomes an error ack): release a token coming home.
    function onRecv(bytes calldata data, string calldata srcPort, string calldata srcChannel)
        external
        returns (bytes memory)
    {
        require(msg.sender == address(this), "only the port");
        (bytes memory denom, uint256 amount, address receiver) = decodeToken(data);
        bytes memory prefix = abi.encodePacked(srcPort, "/", srcChannel, "/");
        require(startsWith(denom, prefix), "only tokens that left this chain come back");
        bytes memory local = slice(denom, prefix.length);
        address token = parseAddress(local);
        require(escrowed[token] >= amount, "escrow short");
        escrowed[token] -= amount;
        require(IERC20(token).transfer(receiver, amount), "transfer failed");
        return local;
    }

    // ---- helpers ----

    function pending(Packet calldata p) internal view returns (bytes32 c) {
        c = keccak256(encodePacket(p));
        if (store[path("commit", p.sequence)] != keccak256(abi.encodePacked(c))) revert UnknownPacket(p.sequence);
    }

    function refund(bytes memory data) internal {
        (bytes memory denom, uint256 amount,) = decodeToken(data);
        address sender;
        uint256 off = 4 + denom.length + 16;
        assembly {
            sender := shr(96, mload(add(add(data, 32), off)))
        }
        address token = parseAddress(denom);
        escrowed[token] -= amount;
        require(IERC20(token).transfer(sender, amount), "refund failed");
    }

    function attested(bytes32 digest, bytes[] calldata sigs) internal view {
        address[] memory seen = new address[](sigs.length);
        uint256 n = 0;
        for (uint256 i = 0; i < sigs.length; i++) {
            if (sigs[i].length != 65) continue;
            bytes32 r = bytes32(sigs[i][0:32]);
            bytes32 s = bytes32(sigs[i][32:64]);
            uint8 v = uint8(sigs[i][64]);
            if (v < 27) v += 27;
            if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0) continue;
            address who = ecrecover(digest, v, r, s);
            if (who == address(0) || !isAttester[who]) continue;
            bool dup = false;
            for (uint256 j = 0; j < n; j++) {
                if (seen[j] == who) dup = true;
            }
            if (dup) continue;
            seen[n++] = who;
        }
        if (n < threshold) revert NotAttested(n, threshold);
    }

    function path(string memory kind, uint64 seq) internal view returns (bytes32) {
        return keccak256(abi.encodePacked(kind, "/", channel, "/", seq));
    }

    /// Borsh of a packet, as the Tongtian chain encodes it.
    function encodePacket(Packet memory p) internal pure returns (bytes memory) {
        bytes memory head = abi.encodePacked(
            le(p.sequence, 8), str(bytes(p.sourcePort)), str(bytes(p.sourceChannel)), str(bytes(p.destPort))
        );
        return abi.encodePacked(head, str(bytes(p.destChannel)), str(p.data), le(p.timeoutHeight, 8), le(p.timeoutMs, 8));
    }

    /// A Borsh token packet: denom, amount (u128), sender, receiver, no forward.
    function decodeToken(bytes memory data) internal pure returns (bytes memory denom, uint256 amount, address receiver) {
        require(data.length >= 4, "short packet");
        uint256 len = uint8(data[0]) | (uint256(uint8(data[1])) << 8) | (uint256(uint8(data[2])) << 16)
            | (uint256(uint8(data[3])) << 24);
        require(data.length == 4 + len + 16 + 20 + 20 + 1, "bad token packet");
        denom = slice(data, 4);
        assembly {
            mstore(denom, len)
        }
        for (uint256 i = 0; i < 16; i++) {
            amount |= uint256(uint8(data[4 + len + i])) << (8 * i);
        }
        uint256 off = 4 + len + 16 + 20;
        assembly {
            receiver := shr(96, mload(add(add(data, 32), off)))
        }
        require(data[data.length - 1] == 0x00, "forwarding is not supported here");
    }

    function le(uint256 v, uint256 n) internal pure returns (bytes memory b) {
        b = new bytes(n);
        for (uint256 i = 0; i < n; i++) {
            b[i] = bytes1(uint8(v >> (8 * i)));
        }
    }

    function str(bytes memory s) internal pure returns (bytes memory) {
        return abi.encodePacked(le(s.length, 4), s);
    }

    function eq(string memory a, string memory b) internal pure returns (bool) {
        return keccak256(bytes(a)) == keccak256(bytes(b));
    }

    function startsWith(bytes memory s, bytes memory prefix) internal pure returns (bool) {
        if (s.length < prefix.length) return false;
        for (uint256 i = 0; i < prefix.length; i++) {
            if (s[i] != prefix[i]) return false;
        }
        return true;
    }

    function slice(bytes memory s, uint256 from) internal pure returns (bytes memory out) {
        out = new bytes(s.length - from);
        for (uint256 i = 0; i < out.length; i++) {
            out[i] = s[from + i];
        }
    }

    function hexAddress(address a) internal pure returns (string memory) {
        bytes memory s = new bytes(42);
        bytes16 digits = "0123456789abcdef";
        s[0] = "0";
        s[1] = "x";
        uint160 v = uint160(a);
        for (uint256 i = 0; i < 20; i++) {
            uint8 b = uint8(v >> (8 * (19 - i)));
            s[2 + 2 * i] = digits[b >> 4];
            s[3 + 2 * i] = digits[b & 0x0f];
        }
        return string(s);
    }

    function parseAddress(bytes memory s) internal pure returns (address) {
        require(s.length == 42 && s[0] == "0" && s[1] == "x", "not a token address");
        uint160 v = 0;
        for (uint256 i = 2; i < 42; i++) {
            uint8 c = uint8(s[i]);
            uint8 d;
            if (c >= 48 && c <= 57) d = c - 48;
            else if (c >= 97 && c <= 102) d = c - 87;
            else revert("not a token address");
            v = (v << 4) | d;
        }
        return address(v);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// The channel module at its fixed address, as a contract sees it.
interface IChannel {
    function sendPacket(string calldata channel, bytes calldata data, uint64 timeoutHeight, uint64 timeoutMs)
        external
        returns (uint64);
}

/// A cross-chain call, in both directions, over a channel bound to this
/// contract's port (its address) on each chain.
///
/// `callRemote(channel, key, value, timeoutHeight)` on chain A asks the
/// CrossCall at the other end of `channel` on chain B to set `key` to
/// `value`; B answers with the value `key` held before, which comes back
/// to A in the acknowledgement and is kept under the packet's sequence.
/// A refusal on B (an empty key) comes back as an error acknowledgement;
/// a packet B never received times out and is marked so.
contract CrossCall {
    /// The channel module (`module_address("channel")`).
    address public constant CHANNEL = 0xffFFa2dDa54E8D63e162cbA4b1c4C56E6919E92B;

    /// Outcome of a call sent from here.
    enum Outcome {
        None,
        Pending,
        Answered,
        Refused,
        TimedOut
    }

    /// The register this chain's end keeps.
    mapping(string => string) public values;
    /// Calls sent from here, by sequence.
    mapping(uint64 => Outcome) public outcome;
    /// What the remote answered (its old value, or its refusal).
    mapping(uint64 => bytes) public answer;

    event CallSent(uint64 indexed sequence, string key, string value);
    event CallSet(string key, string value, string previous);
    event CallAnswered(uint64 indexed sequence, bool success, bytes result);
    event CallTimedOut(uint64 indexed sequence);

    modifier onlyChannel() {
        require(msg.sender == CHANNEL, "only the channel module calls back");
        _;
    }

    /// Ask the other end to set `key` to `value`.
    function callRemote(string calldata channel, string calldata key, string calldata value, uint64 timeoutHeight)
        external
        returns (uint64 sequence)
    {
        sequence = IChannel(CHANNEL).sendPacket(channel, abi.encode(key, value), timeoutHeight, 0);
        outcome[sequence] = Outcome.Pending;
        emit CallSent(sequence, key, value);
    }

    /// A call from the other end: set the value, answer the old one.
    function onRecvPacket(string calldata, uint64, bytes calldata data) external onlyChannel returns (bytes memory) {
        (string memory key, string memory value) = abi.decode(data, (string, string));
        require(bytes(key).length > 0, "empty key");
        string memory previous = values[key];
        values[key] = value;
        emit CallSet(key, value, previous);
        return bytes(previous);
    }

    /// The other end's answer to a call sent from here.
    function onAcknowledgementPacket(string calldata, uint64 sequence, bytes calldata, bool success, bytes calldata result)
        external
        onlyChannel
    {
        outcome[sequence] = success ? Outcome.Answered : Outcome.Refused;
        answer[sequence] = result;
        emit CallAnswered(sequence, success, result);
    }

    /// A call sent from here that the other end never received in time.
    function onTimeoutPacket(string calldata, uint64 sequence, bytes calldata) external onlyChannel {
        outcome[sequence] = Outcome.TimedOut;
        emit CallTimedOut(sequence);
    }
}

"""Drive a Tongtian dev node's Ethereum JSON-RPC with web3.py, the way its
tutorials do: the node's own unlocked accounts (w3.eth.accounts,
transact/send_transaction), a contract deployed from its ABI and bytecode,
event filters and logs, a legacy EIP-155 transaction signed locally, a
custom-error revert, message signing and the fee history; then
subscriptions over a WebSocket (eth_subscribe "newHeads" and "logs"). Prints one JSON
object of what it saw; exits non-zero on the first surprise.

Usage: python web3-test.py RPC_URL CONTRACT_DIR
"""

import asyncio
import json
import sys

from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import AsyncWeb3, Web3, WebSocketProvider
from web3.exceptions import ContractCustomError

url, contract_dir = sys.argv[1:3]
# Hardhat/Anvil account #1 of "test test ... junk".
KEY1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def check(cond, what):
    if not cond:
        print(f"check failed: {what}", file=sys.stderr)
        sys.exit(1)


def mined(tx_hash):
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
out = {"connected": w3.is_connected(), "chainId": w3.eth.chain_id}
check(out["connected"], "connected")

# The node's own accounts, unlocked on a dev chain.
accounts = w3.eth.accounts
out["accounts"] = len(accounts)
check(len(accounts) == 10, "ten unlocked dev accounts")
me = accounts[0]

abi = json.load(open(f"{contract_dir}/Token.abi"))
bytecode = "0x" + open(f"{contract_dir}/Token.bin").read().strip()
deployed = mined(w3.eth.contract(abi=abi, bytecode=bytecode).constructor("Py Token", "PYT", 10**21).transact({"from": me}))
out["deployStatus"] = deployed.status
token = w3.eth.contract(address=deployed.contractAddress, abi=abi)
out["symbol"] = token.functions.symbol().call()
check(out["symbol"] == "PYT", "symbol read by eth_call")

# Filters installed before the transfer report it (eth_newFilter,
# eth_newBlockFilter, eth_getFilterChanges).
transfers = token.events.Transfer.create_filter(from_block="latest")
blocks = w3.eth.filter("latest")
to = Account.create().address
sent = mined(token.functions.transfer(to, 25).transact({"from": me}))
out["balance"] = token.functions.balanceOf(to).call()
check(out["balance"] == 25, "recipient balance")
entries = transfers.get_new_entries()
out["filterEntries"] = [[e.args["from"], e.args["to"], e.args["value"]] for e in entries]
check(out["filterEntries"] == [[me, to, 25]], "the Transfer filter reports the transfer")
check(sent.blockHash in blocks.get_new_entries(), "the block filter reports its block")
logs = token.events.Transfer.get_logs(from_block=0)
out["logs"] = len(logs)
check(len(logs) == 2, "mint and transfer logs through eth_getLogs")

# A legacy (EIP-155, gasPrice) transaction signed here, sent raw.
local = Account.from_key(KEY1)
signed = local.sign_transaction(
    {
        "to": to,
        "value": 7,
        "gas": 21000,
        "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(local.address, "pending"),
        "chainId": out["chainId"],
    }
)
legacy = mined(w3.eth.send_raw_transaction(signed.raw_transaction))
out["legacyType"] = w3.eth.get_transaction(legacy.transactionHash)["type"]
out["legacyStatus"] = legacy.status
# And a payment the node signs.
mined(w3.eth.send_transaction({"from": accounts[2], "to": to, "value": 5}))
out["ethBalance"] = w3.eth.get_balance(to)
check(out["ethBalance"] == 12, "both payments arrived")

# A revert with a custom error, caught before sending.
try:
    token.functions.transfer(to, 10**30).call({"from": me})
    check(False, "over-transfer should revert")
except ContractCustomError as e:
    out["revertData"] = str(e.data)[:10]

# Messages signed by the node recover to its account.
signature = w3.eth.sign(me, text="Tongtian notarizes this")
out["signedBy"] = Account.recover_message(encode_defunct(text="Tongtian notarizes this"), signature=signature)
check(out["signedBy"] == me, "eth_sign recovers the account")

history = w3.eth.fee_history(2, "latest", [50])
out["feeHistoryBlocks"] = len(history["gasUsedRatio"])
block = w3.eth.get_block(sent.blockNumber, full_transactions=True)
out["blockHasTransfer"] = any(t["hash"] == sent.transactionHash for t in block.transactions)
check(out["blockHasTransfer"], "block lists the transfer")


async def over_socket():
    """Subscribe to new heads and the token's logs, then transfer."""
    async with AsyncWeb3(WebSocketProvider(url.replace("http", "ws", 1))) as aw3:
        heads = await aw3.eth.subscribe("newHeads")
        logs = await aw3.eth.subscribe("logs", {"address": token.address})
        sent = token.functions.transfer(to, 3).transact({"from": me})
        seen = {}
        async for msg in aw3.socket.process_subscriptions():
            if msg["subscription"] == heads:
                seen.setdefault("headNumber", msg["result"]["number"])
            elif msg["subscription"] == logs:
                seen["logTx"] = "0x" + bytes(msg["result"]["transactionHash"]).hex()
            if len(seen) == 2:
                break
        seen["sent"] = "0x" + bytes(sent).hex()
        seen["unsubscribed"] = await aw3.eth.unsubscribe(heads)
        return seen


socket = asyncio.run(asyncio.wait_for(over_socket(), 30))
out["socketHead"] = socket["headNumber"] > 0
out["socketLog"] = socket["logTx"] == socket["sent"]
out["socketUnsubscribed"] = socket["unsubscribed"]
check(out["socketLog"], "the logs subscription reported the transfer")
print(json.dumps(out))

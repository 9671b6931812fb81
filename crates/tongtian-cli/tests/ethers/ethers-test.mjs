// Deploy the ERC-20 example through a Tongtian node's Ethereum JSON-RPC
// with ethers.js, transfer, read the Transfer logs back with eth_getLogs
// and through filters and an event listener, and catch reverts; then do it
// again with the node's own unlocked accounts (eth_accounts,
// eth_sendTransaction, personal_sign, eth_signTypedData_v4), as Hardhat's
// `localhost` network does. Prints one JSON object of what it saw; exits
// non-zero on the first surprise. Usage: node ethers-test.mjs RPC_URL CONTRACT_DIR
import { readFileSync } from "node:fs";
import { ethers } from "ethers";

const [url, dir] = process.argv.slice(2);
// Hardhat/Anvil account #0 of "test test ... junk": every tutorial's first key.
const KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

function check(cond, what) {
  if (!cond) {
    console.error(`check failed: ${what}`);
    process.exit(1);
  }
}

// cacheTimeout -1: ethers by default answers a request identical to one made
// in the last 250 ms from that earlier answer. A dev chain mines faster than
// that, so the "pending" nonce fetched for one transfer would be reused for
// the next and rejected as already used (NONCE_EXPIRED).
const provider = new ethers.JsonRpcProvider(url, undefined, {
  staticNetwork: true,
  pollingInterval: 100,
  cacheTimeout: -1,
});
const wallet = new ethers.Wallet(KEY0, provider);
const out = {};

const network = await provider.getNetwork();
out.chainId = Number(network.chainId);
out.balance = (await provider.getBalance(wallet.address)).toString();
check(BigInt(out.balance) > 0n, "dev account 0 is funded");

const abi = JSON.parse(readFileSync(`${dir}/Token.abi`, "utf8"));
const bin = "0x" + readFileSync(`${dir}/Token.bin`, "utf8").trim();
const factory = new ethers.ContractFactory(abi, bin, wallet);
const token = await factory.deploy("Tongtian Token", "TTT", ethers.parseUnits("1000", 18));
await token.waitForDeployment();
out.token = await token.getAddress();
out.code = (await provider.getCode(out.token)).length > 2;
check(out.code, "contract code is stored");
out.symbol = await token.symbol();

const to = ethers.Wallet.createRandom().address;
const tx = await token.transfer(to, ethers.parseUnits("12.5", 18));
const receipt = await tx.wait();
out.transferStatus = receipt.status;
out.transferGas = receipt.gasUsed.toString();
out.recipientBalance = (await token.balanceOf(to)).toString();
check(out.recipientBalance === ethers.parseUnits("12.5", 18).toString(), "recipient balance");

// Transfer logs via eth_getLogs, decoded by the ABI.
const logs = await provider.getLogs({
  address: out.token,
  fromBlock: 0,
  toBlock: "latest",
  topics: [token.interface.getEvent("Transfer").topicHash],
});
out.transferLogs = logs.map((l) => {
  const e = token.interface.parseLog(l);
  return { from: e.args[0], to: e.args[1], value: e.args[2].toString() };
});
check(out.transferLogs.length === 2, "mint and transfer logs");
check(out.transferLogs[1].to === to, "log recipient");

// A revert caught before sending (eth_estimateGas / eth_call) ...
try {
  await token.transfer.staticCall(to, ethers.parseUnits("5000", 18));
  check(false, "over-transfer should revert");
} catch (e) {
  out.staticRevert = { code: e.code, error: e.revert?.name ?? null, args: e.revert?.args?.map(String) ?? null };
  check(e.code === "CALL_EXCEPTION", "static call reverts with CALL_EXCEPTION");
  check(e.revert?.name === "InsufficientBalance", "custom error decoded");
}
// ... and one mined with a failed status.
try {
  const bad = await token.transfer(to, ethers.parseUnits("5000", 18), { gasLimit: 100000 });
  await bad.wait();
  check(false, "mined over-transfer should fail");
} catch (e) {
  out.minedRevert = { code: e.code, status: e.receipt?.status ?? null };
  check(e.code === "CALL_EXCEPTION" && e.receipt?.status === 0, "mined revert has status 0");
}
out.recipientAfter = (await token.balanceOf(to)).toString();
check(out.recipientAfter === out.recipientBalance, "revert changed nothing");

// A plain value transfer, and the nonce it used.
const pay = await wallet.sendTransaction({ to, value: 12345n });
await pay.wait();
out.ethBalance = (await provider.getBalance(to)).toString();
check(out.ethBalance === "12345", "native payment");
out.nonce = await provider.getTransactionCount(wallet.address);
const block = await provider.getBlock(receipt.blockNumber);
out.blockHasTx = block.transactions.includes(tx.hash);
check(out.blockHasTx, "block lists the transaction");
// Log blooms, checked against the rule computed here from ethers' keccak:
// each of address and topics sets three bits of the 2048.
function bloomHas(bloomHex, itemHex) {
  const bloom = ethers.getBytes(bloomHex);
  const h = ethers.getBytes(ethers.keccak256(itemHex));
  return [0, 2, 4].every((i) => {
    const bit = ((h[i] << 8) | h[i + 1]) & 2047;
    return (bloom[255 - Math.floor(bit / 8)] & (1 << (bit % 8))) !== 0;
  });
}
const transferLog = receipt.logs[0];
const bloomItems = [transferLog.address, ...transferLog.topics];
out.receiptBloom = bloomItems.every((x) => bloomHas(receipt.logsBloom, x));
check(out.receiptBloom, "receipt logsBloom holds the log's address and topics");
// ethers' Block has no logsBloom: ask the node directly.
const rawBlock = await provider.send("eth_getBlockByNumber", [ethers.toQuantity(receipt.blockNumber), false]);
out.blockBloom = bloomItems.every((x) => bloomHas(rawBlock.logsBloom, x));
check(out.blockBloom, "block logsBloom holds the log's address and topics");
const payReceipt = await provider.getTransactionReceipt(pay.hash);
check(/^0x0{512}$/.test(payReceipt.logsBloom), "a payment without logs has an empty bloom");
const got = await provider.getTransaction(tx.hash);
out.txFrom = got.from;
check(got.from === wallet.address, "transaction sender");

// (unref: a pending timer does not keep the script alive at the end)
const timeout = () => new Promise((_, reject) => setTimeout(() => reject(new Error("nothing heard within 10 s")), 10000).unref());
// Filters, as web3.py's create_filter and ethers' listeners use them:
// installed now, they report only what is mined after.
const transferTopic = token.interface.getEvent("Transfer").topicHash;
const logFilter = await provider.send("eth_newFilter", [{ address: out.token, topics: [transferTopic] }]);
const blockFilter = await provider.send("eth_newBlockFilter", []);
const pendingFilter = await provider.send("eth_newPendingTransactionFilter", []);
// Awaiting `once` has ethers send its filter request before any of the
// transfer's, so the listener cannot miss the transfer.
let pendingHeard;
const heardPending = new Promise((resolve) => (pendingHeard = resolve));
await provider.once("pending", pendingHeard);
check((await provider.send("eth_getFilterChanges", [logFilter])).length === 0, "a new filter reports nothing old");
// An ethers listener: with the node offering filters, ethers polls one
// (eth_newFilter + eth_getFilterChanges) instead of eth_getLogs.
let transferHeard;
const heard = new Promise((resolve) => (transferHeard = resolve));
await token.once("Transfer", (from, to2, value) => transferHeard({ from, to: to2, value: value.toString() }));
const t2 = await token.transfer(to, 7n);
const r2 = await t2.wait();
const changes = await provider.send("eth_getFilterChanges", [logFilter]);
out.filterChanges = changes.map((l) => l.transactionHash);
check(changes.length === 1 && changes[0].transactionHash === t2.hash, "log filter reports the new transfer once");
check((await provider.send("eth_getFilterChanges", [logFilter])).length === 0, "and not again");
const pendingHashes = await provider.send("eth_getFilterChanges", [pendingFilter]);
check(pendingHashes.includes(t2.hash), "pending filter reports the admitted transaction");
out.heardPending = await Promise.race([heardPending, timeout()]);
check(/^0x[0-9a-f]{64}$/.test(out.heardPending), "ethers pending listener heard a hash");
const blocks = await provider.send("eth_getFilterChanges", [blockFilter]);
check(blocks.includes(r2.blockHash), "block filter reports the transfer's block");
const filterLogs = await provider.send("eth_getFilterLogs", [logFilter]);
check(filterLogs.some((l) => l.transactionHash === t2.hash), "eth_getFilterLogs reads the filter's range");
out.heard = await Promise.race([heard, timeout()]);
check(out.heard.to === to && out.heard.value === "7", "ethers listener heard the transfer");
out.uninstalled = await provider.send("eth_uninstallFilter", [logFilter]);
check(out.uninstalled === true, "uninstall");
try {
  await provider.send("eth_getFilterChanges", [logFilter]);
  check(false, "an uninstalled filter is gone");
} catch (e) {
  out.goneFilter = e.error?.message ?? e.message;
}

// The node's own accounts: `tongtian dev` unlocks the development
// accounts, so a signer that holds no key works, as against Hardhat's or
// Anvil's node. The node picks nonce and gas and signs.
const nodeSigners = await provider.listAccounts();
out.nodeAccounts = nodeSigners.map((s) => s.address);
check(out.nodeAccounts.length === 10 && out.nodeAccounts[0] === wallet.address, "eth_accounts lists the dev accounts");
const nodeSigner = await provider.getSigner(1);
const nodeToken = await new ethers.ContractFactory(abi, bin, nodeSigner).deploy("Node Token", "NTK", 1000n);
await nodeToken.waitForDeployment();
out.nodeDeployer = (await provider.getTransaction(nodeToken.deploymentTransaction().hash)).from;
check(out.nodeDeployer === nodeSigner.address, "eth_sendTransaction deployed from the node's account");
const nodeTransfer = await (await nodeToken.transfer(to, 40n)).wait();
out.nodeTransfer = { status: nodeTransfer.status, to: (await nodeToken.balanceOf(to)).toString() };
check(nodeTransfer.status === 1 && out.nodeTransfer.to === "40", "transfer signed by the node");
// Sent back to back without waiting: the node gives them consecutive nonces.
const [p1, p2] = await Promise.all([
  nodeSigner.sendTransaction({ to, value: 5n }),
  nodeSigner.sendTransaction({ to, value: 6n }),
]);
await Promise.all([p1.wait(), p2.wait()]);
out.nodePayments = [p1.nonce, p2.nonce].sort((a, b) => a - b);
check(out.nodePayments[1] === out.nodePayments[0] + 1, "consecutive nonces");
check((await provider.getBalance(to)) === 12345n + 11n, "payments signed by the node arrived");
// eth_getBlockReceipts answers what eth_getTransactionReceipt answers for
// each transaction of the block (cumulative gas, log indexes), by number
// and by hash.
async function blockReceiptsAgree(blockNumber) {
  const block = await provider.send("eth_getBlockByNumber", [ethers.toQuantity(blockNumber), false]);
  const each = await Promise.all(block.transactions.map((h) => provider.send("eth_getTransactionReceipt", [h])));
  const byNumber = await provider.send("eth_getBlockReceipts", [ethers.toQuantity(blockNumber)]);
  const byHash = await provider.send("eth_getBlockReceipts", [block.hash]);
  return each.length > 0 && JSON.stringify(byNumber) === JSON.stringify(each) && JSON.stringify(byHash) === JSON.stringify(each);
}
const receiptBlocks = [...new Set([receipt.blockNumber, r2.blockNumber, nodeTransfer.blockNumber, (await p1.wait()).blockNumber, (await p2.wait()).blockNumber])];
out.blockReceiptsAgree = (await Promise.all(receiptBlocks.map(blockReceiptsAgree))).every(Boolean);
check(out.blockReceiptsAgree, "eth_getBlockReceipts agrees with eth_getTransactionReceipt");
try {
  await nodeToken.transfer(to, 5000n);
  check(false, "an over-transfer should be refused when the node estimates its gas");
} catch (e) {
  // Through a node-side signer ethers leaves the custom error undecoded;
  // the revert data is there, and it is InsufficientBalance's.
  out.nodeRevert = { code: e.code, error: token.interface.parseError(e.data ?? "0x")?.name ?? null };
}
const message = "Tongtian notarizes this";
const signature = await nodeSigner.signMessage(message);
out.signedMessageBy = ethers.verifyMessage(message, signature);
check(out.signedMessageBy === nodeSigner.address, "personal_sign signature recovers the account");
const domain = { name: "Deed", version: "1", chainId: out.chainId, verifyingContract: out.token };
const types = { Grant: [{ name: "to", type: "address" }, { name: "amount", type: "uint256" }, { name: "memo", type: "string" }] };
const grant = { to, amount: 7n, memo: "data use grant" };
const typedSignature = await nodeSigner.signTypedData(domain, types, grant);
out.signedTypedDataBy = ethers.verifyTypedData(domain, types, grant, typedSignature);
check(out.signedTypedDataBy === nodeSigner.address, "eth_signTypedData_v4 signature recovers the account");
try {
  await provider.send("eth_sendTransaction", [{ from: to, to, value: "0x1" }]);
  check(false, "an account the node does not hold cannot send");
} catch (e) {
  out.unknownAccount = e.error?.message ?? e.message;
}

// The same listeners over a WebSocket: ethers' WebSocketProvider uses
// eth_subscribe ("newHeads", "logs", "newPendingTransactions") and is told
// by the node instead of polling.
const ws = new ethers.WebSocketProvider(url.replace(/^http/, "ws"), undefined, { staticNetwork: true });
const wsToken = new ethers.Contract(out.token, abi, ws);
const heardOnSocket = (subscribe) => new Promise((resolve) => subscribe(resolve));
let wsBlock, wsTransfer, wsPending;
const blockOnSocket = heardOnSocket((r) => (wsBlock = r));
const transferOnSocket = heardOnSocket((r) => (wsTransfer = r));
const pendingOnSocket = heardOnSocket((r) => (wsPending = r));
await ws.once("block", (n) => wsBlock(n));
await wsToken.once("Transfer", (from, to2, value) => wsTransfer({ from, to: to2, value: value.toString() }));
await ws.once("pending", (h) => wsPending(h));
// A round trip after the subscribe requests on the same socket: they are
// in place before the transfer is sent.
await ws.send("eth_blockNumber", []);
const t4 = await token.transfer(to, 9n);
await t4.wait();
out.ws = {
  transfer: await Promise.race([transferOnSocket, timeout()]),
  block: await Promise.race([blockOnSocket, timeout()]),
  pending: await Promise.race([pendingOnSocket, timeout()]),
};
check(out.ws.transfer.value === "9" && out.ws.transfer.to === to, "Transfer heard over the socket");
check(Number.isInteger(out.ws.block), "new head heard over the socket");
check(out.ws.pending === t4.hash, "pending transaction heard over the socket");
const subscription = await ws.send("eth_subscribe", ["newHeads"]);
out.wsUnsubscribed = [await ws.send("eth_unsubscribe", [subscription]), await ws.send("eth_unsubscribe", [subscription])];
try {
  await ws.send("eth_subscribe", ["nonsense"]);
  check(false, "an unknown subscription is refused");
} catch (e) {
  out.wsBadSubscription = e.error?.code ?? e.code;
}
try {
  await provider.send("eth_subscribe", ["newHeads"]);
  check(false, "no subscriptions over HTTP");
} catch (e) {
  out.httpSubscription = e.error?.code ?? e.code;
}
await ws.destroy();

console.log(JSON.stringify(out));
provider.destroy();

// Drive a Tongtian dev node's Ethereum JSON-RPC with viem 2: fee estimates,
// deploy the ERC-20 from a local account, simulate and write a transfer,
// watch its Transfer event (filters), read the balance, decode a custom
// error, send three transfers in reverse nonce order (the node queues the
// early ones), pay for and use access lists, send from the node's own
// account (eth_accounts), and watch block
// numbers over a WebSocket (eth_subscribe). Prints one JSON object of what
// it saw; exits non-zero on the first surprise.
// Usage: node viem-test.mjs RPC_URL CONTRACT_DIR
import { readFileSync } from "node:fs";
import { createPublicClient, createWalletClient, defineChain, encodeAbiParameters, encodeFunctionData, http, keccak256, parseUnits, webSocket } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const [url, dir] = process.argv.slice(2);

function check(cond, what) {
  if (!cond) {
    console.error(`check failed: ${what}`);
    process.exit(1);
  }
}
const within = (promise, what) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing within 10 s`)), 10000).unref())]);

const chain = defineChain({
  id: 8645,
  name: "tongtian-dev",
  nativeCurrency: { name: "Tongtian", symbol: "TT", decimals: 18 },
  rpcUrls: { default: { http: [url] } },
});
// Hardhat/Anvil account #0.
const account = privateKeyToAccount("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
const pub = createPublicClient({ chain, transport: http(url), pollingInterval: 100 });
const wallet = createWalletClient({ chain, transport: http(url), account });
const out = {};

out.chainId = await pub.getChainId();
const fees = await pub.estimateFeesPerGas();
out.fees = { maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas };
check(fees.maxFeePerGas >= fees.maxPriorityFeePerGas, "EIP-1559 fee estimate");

const abi = JSON.parse(readFileSync(`${dir}/Token.abi`, "utf8"));
const bytecode = "0x" + readFileSync(`${dir}/Token.bin`, "utf8").trim();
const deployed = await pub.waitForTransactionReceipt({
  hash: await wallet.deployContract({ abi, bytecode, args: ["Viem Token", "VIE", parseUnits("1000", 18)] }),
});
out.token = deployed.contractAddress;
check(deployed.status === "success", "deployment");

// A Transfer watcher on the recipient (a filter polled over HTTP), from
// the deployment's block on, so it cannot miss the transfer.
const to = "0x000000000000000000000000000000000000bEEF";
let transferSeen;
const heardTransfer = new Promise((resolve) => (transferSeen = resolve));
const unwatch = pub.watchContractEvent({
  address: out.token,
  abi,
  eventName: "Transfer",
  args: { to },
  fromBlock: deployed.blockNumber,
  onLogs: (logs) => transferSeen(logs),
});
const { request } = await pub.simulateContract({ address: out.token, abi, functionName: "transfer", args: [to, 5n], account });
const sent = await pub.waitForTransactionReceipt({ hash: await wallet.writeContract(request) });
out.transferStatus = sent.status;
out.balance = await pub.readContract({ address: out.token, abi, functionName: "balanceOf", args: [to] });
check(out.balance === 5n, "balance read back");
const logs = await within(heardTransfer, "Transfer watcher");
unwatch();
out.event = logs.map((l) => [l.eventName, l.args.to, l.args.value]);
check(out.event.length === 1 && out.event[0][1] === to && out.event[0][2] === 5n, "watched Transfer");

try {
  await pub.simulateContract({ address: out.token, abi, functionName: "transfer", args: [to, parseUnits("5000", 18)], account });
  check(false, "over-transfer should revert");
} catch (e) {
  out.revert = e.cause?.data?.errorName ?? e.shortMessage;
}
check(out.revert === "InsufficientBalance", "custom error decoded");

// Three transfers signed with consecutive nonces and sent last first, as
// concurrent senders may deliver them: the node queues the early arrivals
// until the gap fills, as Geth does, and all three are mined.
const base = await pub.getTransactionCount({ address: account.address, blockTag: "pending" });
const signTransfer = (nonce, amount, feeTimes = 1n) =>
  wallet.signTransaction({
    to: out.token,
    data: encodeFunctionData({ abi, functionName: "transfer", args: [to, amount] }),
    nonce,
    gas: 100000n,
    maxFeePerGas: fees.maxFeePerGas * feeTimes,
    maxPriorityFeePerGas: fees.maxPriorityFeePerGas * feeTimes,
  });
const signed = [];
for (let i = 0; i < 3; i++) signed.push(await signTransfer(base + i, 1n));
const hashes = [];
for (const raw of signed.reverse()) hashes.push(await pub.sendRawTransaction({ serializedTransaction: raw }));
const mined = await Promise.all(hashes.map((hash) => pub.waitForTransactionReceipt({ hash })));
out.reversed = mined.map((r) => r.status);
out.reversedBalance = await pub.readContract({ address: out.token, abi, functionName: "balanceOf", args: [to] });
check(out.reversedBalance === 8n, "all three out-of-order transfers applied");
// A second transaction for a nonce already held (queued here) replaces it
// only if it pays at least 10% more per gas, as in Geth: at the same fees
// it is refused in Geth's words, at twice the fees it takes the place.
const held = await pub.sendRawTransaction({ serializedTransaction: await signTransfer(base + 4, 2n) });
try {
  await pub.sendRawTransaction({ serializedTransaction: await signTransfer(base + 4, 3n) });
  check(false, "a held nonce is not replaced at the same price");
} catch (e) {
  out.replacement = e.details ?? e.shortMessage;
}
check(/replacement transaction underpriced/.test(out.replacement), "replacement refused");
const bumped = await pub.sendRawTransaction({ serializedTransaction: await signTransfer(base + 4, 3n, 2n) });
await pub.sendRawTransaction({ serializedTransaction: await signTransfer(base + 3, 2n) });
check((await pub.waitForTransactionReceipt({ hash: bumped })).status === "success", "replacement mined");
out.replacedGone = await pub.getTransactionReceipt({ hash: held }).then(() => false, () => true);
check(out.replacedGone, "the replaced transaction is never mined");

// EIP-2930 access lists, by Ethereum's gas arithmetic: listing an address
// the call never touches costs 2,400 more; listing the two balance slots
// the transfer reads costs 2,400 + 2 x 1,900 up front and saves 2 x 2,000
// (cold reads become warm), 2,200 more in all.
const slot = (who) => keccak256(encodeAbiParameters([{ type: "address" }, { type: "uint256" }], [who, 3n]));
const transferWith = async (accessList) => {
  const hash = await wallet.sendTransaction({
    to: out.token,
    data: encodeFunctionData({ abi, functionName: "transfer", args: [to, 1n] }),
    accessList,
  });
  return [hash, (await pub.waitForTransactionReceipt({ hash })).gasUsed];
};
const [, plainGas] = await transferWith(undefined);
const [, idleGas] = await transferWith([{ address: "0x000000000000000000000000000000000000dEaD", storageKeys: [] }]);
const warmList = [{ address: out.token, storageKeys: [slot(account.address), slot(to)] }];
const [warmHash, warmGas] = await transferWith(warmList);
out.accessListGas = { plain: plainGas, idle: idleGas - plainGas, warm: warmGas - plainGas };
const shown = (await pub.getTransaction({ hash: warmHash })).accessList;
out.accessListShown = shown.length === 1 && shown[0].storageKeys.length === 2 && shown[0].address.toLowerCase() === out.token.toLowerCase();

// The node's own account: a wallet client with no local account.
const nodeWallet = createWalletClient({ chain, transport: http(url) });
const [nodeAccount] = await nodeWallet.getAddresses();
out.nodeAccount = nodeAccount;
const paid = await pub.waitForTransactionReceipt({ hash: await nodeWallet.sendTransaction({ account: nodeAccount, to, value: 7n }) });
out.nodeSend = paid.status;
check(paid.status === "success" && (await pub.getBalance({ address: to })) === 7n, "node-signed payment");

// Block numbers over a WebSocket.
const wsClient = createPublicClient({ chain, transport: webSocket(url.replace(/^http/, "ws")) });
out.wsBlock = await within(
  new Promise((resolve) => {
    const stop = wsClient.watchBlockNumber({ onBlockNumber: (n) => { stop(); resolve(n); } });
  }),
  "block number over the socket",
);
check(out.wsBlock > 0n, "socket block number");

console.log(JSON.stringify(out, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
process.exit(0);

// `npx hardhat run --no-compile scripts/deploy.js`: deploy the ERC-20
// example with Hardhat's signers (the node's unlocked accounts), transfer,
// read the Transfer events back, and catch a revert. Prints one JSON
// object of what it saw; exits non-zero on the first surprise.
const hre = require("hardhat");
const fs = require("node:fs");

function check(cond, what) {
  if (!cond) {
    console.error(`check failed: ${what}`);
    process.exit(1);
  }
}

async function main() {
  const dir = process.env.TONGTIAN_CONTRACTS;
  const out = {};
  out.chainId = Number((await hre.ethers.provider.getNetwork()).chainId);
  const signers = await hre.ethers.getSigners();
  out.signers = signers.length;
  const [owner, other] = signers;
  out.owner = owner.address;
  const abi = JSON.parse(fs.readFileSync(`${dir}/Token.abi`, "utf8"));
  const bin = "0x" + fs.readFileSync(`${dir}/Token.bin`, "utf8").trim();
  const token = await new hre.ethers.ContractFactory(abi, bin, owner).deploy("Hardhat Token", "HHT", 1000n);
  await token.waitForDeployment();
  out.token = await token.getAddress();
  const receipt = await (await token.transfer(other.address, 30n)).wait();
  out.transferStatus = receipt.status;
  out.otherBalance = (await token.balanceOf(other.address)).toString();
  check(out.otherBalance === "30", "transfer arrived");
  const events = await token.queryFilter(token.filters.Transfer(), 0, "latest");
  out.events = events.map((e) => [e.args[0], e.args[1], e.args[2].toString()]);
  check(out.events.length === 2, "mint and transfer events");
  // The same call from the other account, through Hardhat's provider.
  const asOther = token.connect(other);
  await (await asOther.transfer(owner.address, 10n)).wait();
  out.ownerBalance = (await token.balanceOf(owner.address)).toString();
  check(out.ownerBalance === "980", "transfer back from the second signer");
  try {
    await token.transfer.staticCall(other.address, 5000n);
    check(false, "over-transfer should revert");
  } catch (e) {
    // Hardhat hands the node's error over as a ProviderError: code 3 and
    // the revert data, which the ABI decodes.
    out.revert = { code: e.code, error: token.interface.parseError(e.data ?? "0x")?.name ?? null };
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

// A small fleet of Defenders fed through the defender channel: some keep heartbeating (stay
// connected), others stop (the Console judges them disconnected after its grace period).
"use strict";

const { fargateDefender } = require("./console");

class Fleet {
  constructor(dc, { intervalMs = 400 } = {}) {
    this.dc = dc;
    this.alive = new Map();
    this.intervalMs = intervalMs;
    this.timer = null;
    this.round = Promise.resolve();
  }
  async add(defender, { alive = true } = {}) {
    await this.dc.heartbeat(defender);
    if (alive) this.alive.set(defender.hostname, defender);
    return defender;
  }
  async addFargate(opts = {}, { alive = true } = {}) {
    return this.add(fargateDefender(opts), { alive });
  }
  // Stops heartbeating: the Defender turns disconnected once the grace period has passed.
  // Resolves once the round of heartbeats in flight has landed, so no heartbeat of this Defender
  // arrives afterwards (one that did would register a just-deleted Defender again).
  async silence(hostname) {
    this.alive.delete(hostname);
    await this.round;
  }
  start() {
    const beat = async () => {
      this.round = Promise.all([...this.alive.values()].map((d) => this.dc.heartbeat(d).catch(() => {})));
      await this.round;
      if (this.timer !== null) this.timer = setTimeout(beat, this.intervalMs);
    };
    this.timer = setTimeout(beat, this.intervalMs);
    return this;
  }
  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }
}

// Builds a mixed inventory: Fargate tasks across families and clusters (connected and
// disconnected), generic App-Embedded, and a few Container and Host Defenders.
async function seedMixedFleet(dc, { fargateConnected = 8, fargateDisconnected = 3 } = {}) {
  const fleet = new Fleet(dc);
  const families = [
    ["checkout", "prod-east", "us-east-1"],
    ["payments-api", "prod-east", "us-east-1"],
    ["ingest-worker", "prod-west", "us-west-2"],
    ["reports", "staging", "eu-west-1"],
  ];
  const fargate = [];
  for (let i = 0; i < fargateConnected + fargateDisconnected; i++) {
    const [family, cluster, region] = families[i % families.length];
    fargate.push(await fleet.addFargate({ family, cluster, region }, { alive: i < fargateConnected }));
  }
  const appEmbedded = await fleet.addFargate({ family: "billing-batch", cluster: "prod-east", type: "appEmbedded" });
  const others = [];
  const other = (hostname, type, cluster, version) => ({ hostname, type, cluster, version, cloudMetadata: { provider: "aws", region: "us-east-1", accountID: "123456789012" } });
  others.push(await fleet.add(other("ip-10-0-1-17.ec2.internal", "docker", "", "32.07.123")));
  others.push(await fleet.add(other("ip-10-0-2-44.ec2.internal", "serverLinux", "", "32.07.123")));
  others.push(await fleet.add(other("k8s-node-a1", "daemonset", "prod-east-eks", "32.06.101")));
  others.push(await fleet.add(other("k8s-node-a2", "daemonset", "prod-east-eks", "32.06.101"), { alive: false }));
  return { fleet, fargate, appEmbedded, others };
}

function sampleObservations(n = 6) {
  const kinds = [
    ["process", { path: "/usr/local/bin/node", args: "server.js", user: "app" }],
    ["network", { direction: "outbound", dst: "10.0.4.12:5432", proto: "tcp" }],
    ["dns", { query: "api.stripe.com", answer: "54.187.174.169" }],
    ["filesystem", { path: "/tmp/upload-7f3a.bin", op: "write" }],
  ];
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const [kind, fields] = kinds[i % kinds.length];
    return { kind, time: new Date(now - (n - i) * 1000).toISOString().replace(/\.\d+Z$/, "Z"), fields };
  });
}

module.exports = { Fleet, seedMixedFleet, sampleObservations };

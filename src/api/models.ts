/**
 * The agent API's JSON models (shared by the server, the typed client and the CLI).
 */

/** An endpoint as the API shows it. */
export interface EndpointModel {
  id: number;
  endpointId: string;
  networkId: string;
  networkName?: string;
  containerId?: string;
  containerName?: string;
  /** The container's other names on the network (`--network-alias`, compose service names, short id). */
  aliases?: string[];
  ipv4: string;
  mac: string;
  hostInterface: string;
  state: string;
  identity: number;
  labels: string[];
  policyRevision: number;
  createdAt: string;
}

/** An identity as the API shows it. */
export interface IdentityModel {
  id: number;
  labels: string[];
  reserved: boolean;
  localReferences: number;
  /**
   * Nodes holding a reference to it, from their reference keys in the store (one per node,
   * leased: a dead node's reference goes with its lease); absent for reserved identities and when
   * the store could not be read.
   */
  nodes?: string[];
}

/**
 * A network as `cilium network list` shows it: every cluster record (`networks/v1/<name>`) and
 * every network of this node. `status`: `ok` (this node's network agrees with the cluster
 * record), `conflict` (it does not: `detail` says how; new containers on it are refused),
 * `unregistered` (not written yet, e.g. the store is unreachable; the resync retries), `unnamed`
 * (Docker has not told us its name yet), `remote` (other nodes only).
 */
export interface NetworkModel {
  name: string;
  /** This node's Docker network id, when it has a network of that name. */
  networkId?: string;
  subnet: string;
  ipRange?: string;
  gateway?: string;
  internal?: boolean;
  mtu?: number;
  /** Node that created the cluster record, and when. */
  createdBy?: string;
  createdAt?: string;
  /** Nodes registered as using the name. */
  nodes: string[];
  status: 'ok' | 'conflict' | 'unregistered' | 'unnamed' | 'remote';
  detail?: string;
}

/** One IP -> identity mapping. */
export interface IpModel {
  ip: string;
  identity: number;
  node: string;
  endpoint?: number;
  source: 'local' | 'remote';
}

/** Daemon status. */
export interface StatusModel {
  node: string;
  version: string;
  uptimeSeconds: number;
  driver: string;
  kvstore: { backend: string; healthy: boolean; detail: string };
  docker: { connected: boolean; detail: string };
  datapath: string;
  /** Periodic store resync and heartbeat. */
  resync?: {
    intervalMs: number;
    resyncs: number;
    lastResyncAt?: string;
    lastResyncMs?: number;
    lastResyncError?: string;
    lastHeartbeatAt?: string;
  };
  endpoints: Record<string, number>;
  identities: number;
  networks: number;
  /** The overlay between hosts; absent on a single-host node. */
  overlay?: OverlayStatusModel;
  /** The cluster DNS resolver (--dns-address); absent when off. */
  dns?: DnsStatusModel;
}

/** `cilium status`: the cluster DNS resolver's address, upstreams and counters since start. */
export interface DnsStatusModel {
  address: string;
  upstreams: string[];
  queries: number;
  clusterAnswers: number;
  nxdomain: number;
  forwarded: number;
  upstreamFailures: number;
  refused: number;
  malformed: number;
}

/** `cilium status`: how this node reaches others (tunnel or native routing) and the peers it has programmed. */
export interface OverlayStatusModel {
  /** `tunnel` (encapsulated on `device`) or `native` (kernel routes via the underlay `device`). */
  routingMode?: 'tunnel' | 'native';
  /** Tunnel kind; 'disabled' with native routing. */
  tunnel: string;
  /** Tunnel UDP port; 0 with native routing. */
  port: number;
  /**
   * Who writes containers' outer headers (tunnel only): 'bpf' = the veth's program, straight to
   * `underlayDevice`, whose from_underlay program also decapsulates; 'device' = the tunnel device.
   */
  encap?: 'bpf' | 'device';
  /** The device that holds underlayIp (tunnel only). */
  underlayDevice?: string;
  /** The tunnel device, or with native routing the underlay device. */
  device: string;
  underlayIp: string;
  /** Containers' MTU (underlay MTU minus the encapsulation overhead; all of it with native routing). */
  mtu: number;
  /** When the remote ipcache entries were last brought in line with the store. */
  lastSync?: string;
  peers: Array<{ name: string; underlayIp?: string; bootId: string; blocks: string[]; endpoints: number }>;
  /**
   * The kernel routes to peers' blocks (`ip route show proto 193`): native routing's, or the
   * tunnel's (into the tunnel device, for the host's own traffic to remote containers).
   */
  routes?: Array<{ prefix: string; via: string }>;
}

/** Error body of every non-2xx reply. */
export interface ErrorModel {
  error: { code: string; message: string };
}

/** Reply of policy import/delete. */
export interface PolicyRevisionModel {
  revision: number;
}

/** `GET /v1/policy[?name=]`: the stored CiliumNetworkPolicy documents. */
export interface PolicyListModel {
  revision: number;
  /** The documents as imported (apiVersion, kind, metadata, spec/specs). */
  policies: unknown[];
}

/** `POST /v1/policy/trace` request. Labels are `key=value` or `source:key=value`. */
export interface TraceRequestModel {
  srcLabels: string[];
  dstLabels: string[];
  /** 0 = any port. */
  dport: number;
  protocol: 'TCP' | 'UDP' | 'ANY';
}

/** `POST /v1/policy/trace` reply. */
export interface TraceModel {
  verdict: 'allowed' | 'denied';
  /** Name of the policy whose rule decided, or undefined for a default decision. */
  decidingRule?: string;
  /** Human-readable trace lines, ending with "Final verdict: ALLOWED|DENIED". */
  explanation: string[];
}

/** `GET /v1/policy/wait/:revision` reply. */
export interface PolicyWaitModel {
  revision: number;
  endpoints: number;
}

/** One monitor event as streamed by `GET /v1/monitor` (NDJSON, one object per line). */
export interface MonitorEventModel {
  type: 'drop' | 'policy-verdict' | 'trace';
  time: string;
  endpoint: number;
  direction: 'ingress' | 'egress';
  srcIdentity: number;
  dstIdentity: number;
  srcLabels: string[];
  dstLabels: string[];
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  protocol: number;
  /** drop: the reason number and name (e.g. 133 "Policy denied"). */
  reason?: number;
  reasonName?: string;
  /** policy-verdict: allow/deny, match type and the deciding policy. */
  verdict?: 'allow' | 'deny';
  match?: string;
  policy?: string;
  /** trace: observation point. */
  observationPoint?: string;
  length: number;
}

/** One entry of `cilium bpf policy get`. */
export interface BpfPolicyEntryModel {
  direction: 'ingress' | 'egress';
  /** Peer identity; 0 = any. */
  identity: number;
  labels: string[];
  /** 0 = any port. */
  dport: number;
  /** 16 = one port, 0 = any, between = port block. */
  portPrefixLen: number;
  /** 0 = any protocol. */
  protocol: number;
  verdict: 'allow' | 'deny';
  policy?: string;
}

/** `cilium bpf policy get ENDPOINT`. */
export interface BpfEndpointPolicyModel {
  endpoint: number;
  identity: number;
  enforceIngress: boolean;
  enforceEgress: boolean;
  entries: BpfPolicyEntryModel[];
}

/** One `cilium bpf ipcache list` row. */
export interface BpfIpcacheModel {
  prefix: string;
  identity: number;
  netId: number;
  tunnelEndpoint?: string;
  /**
   * Encapsulation in BPF: the underlay gateway towards tunnelEndpoint, or 'device' (the tunnel
   * device routes it); absent = on-link.
   */
  tunnelNexthop?: string;
}

/** One `cilium bpf ct list` row. */
export interface BpfConntrackModel {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  protocol: number;
  srcIdentity: number;
  /**
   * Packet and byte counters per direction; absent when the daemon runs with `--bpf-ct-accounting false` (the default).
   */
  packetsFwd?: string;
  bytesFwd?: string;
  packetsRev?: string;
  bytesRev?: string;
  replySeen: boolean;
  closing: boolean;
  /** Policy now drops the connection's forward direction; its replies no longer extend it. */
  denied: boolean;
  expiresInSeconds: number;
}

/** One `cilium bpf endpoint list` row. */
export interface BpfEndpointModel {
  ip: string;
  endpoint: number;
  ifindex: number;
  identity: number;
  netId: number;
  enforceIngress: boolean;
  enforceEgress: boolean;
  mac: string;
  nodeMac: string;
}

/** One key of `cilium kvstore get`. Revisions are decimal strings (64-bit, never floats). */
export interface KvstoreEntryModel {
  key: string;
  value: string;
  createRevision: string;
  modRevision: string;
  /** The lease the key is bound to (it vanishes with its owner's lease), if any. */
  lease?: string;
}

/** `GET /v1/kvstore?key=K[&recursive=true][&limit=N]`. */
export interface KvstoreGetModel {
  /** Sorted by key; at most `limit` of them (and a bounded number of bytes). */
  entries: KvstoreEntryModel[];
  /** How many keys matched (more than `entries` when `truncated`). */
  total: number;
  truncated: boolean;
}

/** `PUT /v1/kvstore` request: an unconditional, unleased write (an operator's tool). */
export interface KvstoreSetRequestModel {
  key: string;
  value: string;
}

/** `PUT /v1/kvstore` reply. */
export interface KvstoreSetModel {
  key: string;
  /** The key's new mod revision. */
  revision: string;
}

/** `DELETE /v1/kvstore?key=K[&recursive=true]` reply. */
export interface KvstoreDeleteModel {
  deleted: number;
}

/**
 * One node of `cilium node list`: its record (`nodes/v1/<node>`, leased: a node whose lease
 * expired is not listed) as this node's peer watcher holds it, and its heartbeat.
 */
export interface NodeModel {
  name: string;
  /** The node answering the call. */
  local: boolean;
  hostname: string;
  /** The address peers send its containers' traffic to; absent without overlay. */
  underlayIp?: string;
  /** `tunnel` (with `tunnel` and `tunnelPort`), `native`, or `none` (no overlay: single host). */
  routingMode: 'tunnel' | 'native' | 'none';
  tunnel?: string;
  tunnelPort?: number;
  /** Its IPAM address blocks (claims under ipam/v1/blocks/). */
  blocks: string[];
  /** Its endpoints as its ip/v1 entries say. */
  endpoints: number;
  bootId: string;
  startedAt: string;
  /** Whether the answering node programs it as a peer (same routing mode and an underlay address). */
  peer: boolean;
  /** Its last heartbeat (its own clock; written every minute), absent when none is stored. */
  lastSeen?: string;
  /** Seconds since lastSeen by the answering node's clock (0 when the clocks disagree the other way). */
  lastSeenSecondsAgo?: number;
  /** `ok`: heartbeat fresh; `stale`: none for several intervals; `unknown`: no heartbeat stored. */
  health: 'ok' | 'stale' | 'unknown';
  /** Why health is not ok, or why the node is not a peer. */
  detail?: string;
}

/** `GET /v1/version`: the daemon's build and where it runs. */
export interface VersionModel {
  version: string;
  node: string;
  /** `process.version` of the daemon's Node.js. */
  nodejs: string;
  /** `linux/x64`. */
  platform: string;
  /** Kernel release (`uname -r`) and version string (`uname -v`). */
  kernel: string;
  kernelVersion: string;
}

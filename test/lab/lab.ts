// The e2e lab: private dockerd hosts in network namespaces, the busybox image, the safety route,
// preconditions and clean-up. Tests import from here.

export { busyboxTarball, ensureBusyboxImage } from './busybox-image.js';
export {
  DockerHost,
  startDockerHost,
  type DockerdStopOptions,
  type DockerHostOptions,
  type LabTest,
  type SpawnOptions,
} from './docker-host.js';
export { CommandError, killGroup, runCommand, tail, type CommandResult, type RunOptions } from './exec.js';
export {
  cgroupMembers,
  isProcessAlive,
  mountsUnder,
  namespaceMembers,
  reapStaleHosts,
  type HostRecord,
} from './host-cleanup.js';
export { LabProcess, type LabProcessOptions, type ProcessExit } from './lab-process.js';
export {
  ensureSafetyRoute,
  LAB_RANGE,
  labBinaries,
  labPreconditionFailure,
  requireRoot,
  type LabBinaries,
} from './preconditions.js';
export { pendingEmergencyCleanups, registerEmergencyCleanup } from './process-registry.js';

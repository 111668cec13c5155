/**
 * EventReader: cilium_events (a BPF ring buffer) as a stream of typed DatapathEvents.
 *
 * The addon's reader thread drains the ring and hands batches of records to the main thread;
 * each record is decoded here and passed to the listener. A record that does not decode is counted
 * (undecodable), not thrown: one bad record must not stop monitoring.
 */
import type { BpfMap } from './bpf-map.js';
import { decodeEvent, type DatapathEvent } from './abi.js';
import { bpfNative, type NativeRingBufferReader } from './native.js';

/** Receives each event, in ring order. Must not throw. */
export type EventListener = (event: DatapathEvent) => void;

/** Reads the events ring buffer until closed. Keeps the event loop alive while open. */
export class EventReader {
  /** Records that did not decode (short or of an unknown type). */
  undecodable = 0;
  private readonly reader: NativeRingBufferReader;

  /**
   * Starts reading `events` (the cilium_events map; the reader holds its own mapping, so the map
   * may be closed afterwards). onError gets a poll failure, after which no more events come.
   */
  constructor(events: BpfMap, onEvent: EventListener, onError: (err: Error) => void = () => {}) {
    const { RingBufferReader } = bpfNative();
    this.reader = new RingBufferReader(events.fd, (records, error) => {
      if (!records) {
        onError(error ?? new Error('ring buffer reader stopped'));
        return;
      }
      for (const record of records) {
        let event: DatapathEvent;
        try {
          event = decodeEvent(record);
        } catch {
          this.undecodable++;
          continue;
        }
        onEvent(event);
      }
    });
  }

  /** Stops reading; resolves once the reader thread has exited. Idempotent. */
  close(): Promise<void> {
    return this.reader.close();
  }
}

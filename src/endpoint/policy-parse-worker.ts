/**
 * The policy parser's worker thread (see `policy-parser.ts`): YAML/JSON parsing and validation of
 * an import, and validation of a stored repository snapshot, off the daemon's main thread. Pure
 * work on the message's data; the results are plain data that survive structured cloning.
 */
import { parentPort } from 'node:worker_threads';
import { parsePolicyText, PolicyRepository } from '../policy/index.js';
import { PolicyValidationError } from '../util/errors.js';
import type { ParseRequest, ParseResponse } from './policy-parser.js';

function handle(request: ParseRequest): ParseResponse {
  try {
    if (request.kind === 'text') return { id: request.id, ok: true, result: parsePolicyText(request.text) };
    let snapshot: unknown;
    try {
      snapshot = JSON.parse(request.text);
    } catch (err) {
      throw new PolicyValidationError(
        `policy repository snapshot: not JSON (${err instanceof Error ? err.message : String(err)})`,
      );
    }
    return { id: request.id, ok: true, result: PolicyRepository.parseSnapshot(snapshot) };
  } catch (err) {
    const invalid = err instanceof PolicyValidationError;
    return { id: request.id, ok: false, invalid, message: err instanceof Error ? err.message : String(err) };
  }
}

parentPort?.on('message', (request: ParseRequest) => parentPort!.postMessage(handle(request)));

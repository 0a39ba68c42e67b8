/** The store as a config sets it up: its database (or an override), durability, size cap, writer and fsync. */
import type { Config } from '../config.ts'
import { type Store, type StoreOptions, openStore } from './store.ts'

/** `extra.checkpoints`: `thread` for the server, whose event loop must not wait for them (see store.ts). */
export function openStoreFor(config: Config, dbOverride?: string, extra: Pick<StoreOptions, 'checkpoints' | 'onCheckpointsLost' | 'onFinishedLate' | 'onDurabilityLost'> = {}): Store {
  return openStore(dbOverride ?? config.databasePath, {
    sync: config.raw.database_sync,
    busyTimeoutMs: config.raw.database_busy_timeout_ms,
    maxMb: config.raw.database_max_mb,
    writer: config.raw.database_writer,
    fsync: config.raw.database_fsync,
    ...extra,
  })
}

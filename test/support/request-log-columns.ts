/** `PRAGMA table_info(request_log)` exactly as specified: the columns every witness database must have. */
export const REQUEST_LOG_COLUMNS = [
  { cid: 0, name: 'id', type: 'INTEGER', notnull: 0, dflt_value: null, pk: 1 },
  { cid: 1, name: 'timestamp', type: 'TEXT', notnull: 1, dflt_value: null, pk: 0 },
  { cid: 2, name: 'agent_name', type: 'TEXT', notnull: 1, dflt_value: null, pk: 0 },
  { cid: 3, name: 'provider', type: 'TEXT', notnull: 1, dflt_value: null, pk: 0 },
  { cid: 4, name: 'model', type: 'TEXT', notnull: 1, dflt_value: null, pk: 0 },
  { cid: 5, name: 'endpoint', type: 'TEXT', notnull: 1, dflt_value: null, pk: 0 },
  { cid: 6, name: 'tokens_in', type: 'INTEGER', notnull: 0, dflt_value: null, pk: 0 },
  { cid: 7, name: 'tokens_out', type: 'INTEGER', notnull: 0, dflt_value: null, pk: 0 },
  { cid: 8, name: 'latency_ms', type: 'INTEGER', notnull: 0, dflt_value: null, pk: 0 },
  { cid: 9, name: 'status', type: 'TEXT', notnull: 1, dflt_value: null, pk: 0 },
  { cid: 10, name: 'error_message', type: 'TEXT', notnull: 0, dflt_value: null, pk: 0 },
]

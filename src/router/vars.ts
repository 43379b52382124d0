// The variable source that expressions (route vars, _meta.filter, traffic-split, loggers) and chash read.
// Implementations resolve APISIX variable names lazily: uri, request_uri, host, remote_addr, remote_port,
// request_method, server_addr, server_port, scheme, query_string, http_<hdr>, arg_<name>, cookie_<name>,
// uri_param_<name>, post_arg_<name>, route_id, route_name, service_id, consumer_name, mqtt_client_id, ...
export type VarValue = string | number | boolean | string[] | null | undefined;

export interface Vars {
  /** `undefined` when the variable is not set. Hot path: implementations must not allocate closures. */
  get(name: string): VarValue;
}

/** A Vars over a plain map, for stream sessions and tests. */
export class MapVars implements Vars {
  readonly values: Map<string, VarValue>;
  constructor(values?: Record<string, VarValue> | Map<string, VarValue>) {
    this.values = values instanceof Map ? values : new Map(Object.entries(values ?? {}));
  }
  get(name: string): VarValue {
    return this.values.get(name);
  }
  set(name: string, value: VarValue): void {
    this.values.set(name, value);
  }
}

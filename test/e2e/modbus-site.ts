// The smallest site the daemon end-to-end tests run: one Modbus/TCP front door on loopback, one vendor
// bound to 127.0.0.1, one PLC, one grant over holding registers 0-99.
export interface ModbusSite {
  id: string;
  dir: string;
  /** The `journal:` mapping, e.g. `{ path: /x/journal, checkpoint_every: 1000, checkpoint_seconds: 3600 }`. */
  journal: string;
  modbusPort: number;
  plcPort: number;
  grant: { id: string; ticket: string; access: 'read' | 'readwrite' };
}

export function modbusSiteYaml(s: ModbusSite): string {
  return `appliance: { id: ${s.id}, site: Test, zone: dmz, state_dir: ${s.dir}/state, runtime_dir: ${s.dir}/run }
journal: ${s.journal}
${modbusDoorYaml(s.modbusPort, s.plcPort)}grants:
  - { id: ${s.grant.id}, principal: vendor-1, targets: [plc-1], task: { ticket: ${s.grant.ticket} }, rules: [{ modbus: { access: ${s.grant.access}, tables: [holding_register], addresses: ["0-99"] } }] }
`;
}

/** The Modbus/TCP front door on loopback, vendor-1 bound to 127.0.0.1 and plc-1: listeners, principals and targets. */
export function modbusDoorYaml(modbusPort: number, plcPort: number): string {
  return `listeners:
  - { id: mb, protocol: modbus, mode: tcp, host: 127.0.0.1, port: ${modbusPort}, routes: [{ unit: 1, target: plc-1 }], bindings: [{ source: 127.0.0.1, principal: vendor-1 }] }
principals:
  - { id: vendor-1, kind: vendor, owner: ACME, purpose: Maintenance }
targets:
  - { id: plc-1, protocol: modbus, zone: cell-a, host: 127.0.0.1, port: ${plcPort} }
`;
}

// A simulated boiler behind an OPC UA server (node-opcua): the upstream "PLC" of the demo site, of the
// OPC UA tests and of the OPC UA benchmark.
//   Objects/Boiler/Drum/Level        Double, read-only (moved from outside: setLevel)
//   Objects/Boiler/Drum/Pressure     Double, read-only
//   Objects/Boiler/Setpoint          Double, writable (engineering range 0..100 by rule, not enforced here)
//   Objects/Boiler/Burner/FuelValve  Double, writable
//   Objects/Boiler/StartPump()       method
//   Objects/Boiler/ResetTrip(reason: String) → (done: Boolean)   method
//   Objects/Boiler/Alarms/HighLevel  Boolean alarm, read-only (true while Level > 90)
//   Objects/Bench/V000…V099          Double, read-only (100-node batches)
//   Objects/Bench/Knob               Double, writable, plain (a write is a data change at once)
// It counts what reaches it (`hits`) and tells `onReach` of each write and call, so a test can assert
// that a refused operation never got here.
// Run as a program (`node boiler-plant.ts PORT PKI_DIR`) it prints {"ready":true,"endpoint":…,"cert":…}.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataType, OPCUACertificateManager, OPCUAServer, StatusCodes, Variant, type UAVariable } from 'node-opcua';

export interface PlantHits {
  setpointWrites: number;
  fuelValveWrites: number;
  fuelValveReads: number;
  startPump: number;
  resetTrip: number;
}

/** A write or method call that reached the plant (the demo prints these). */
export type PlantReach =
  | { kind: 'write'; path: string; value: unknown }
  | { kind: 'call'; path: string; args: unknown[] };

export interface PlantOptions {
  onReach?: (reach: PlantReach) => void;
}

export interface Plant {
  endpoint: string;
  /** The plant server's certificate (DER file), for the gateway target's `server_certificate`. */
  certFile: string;
  hits: PlantHits;
  setpoint(): number;
  level(): number;
  setLevel(v: number): void;
  /** Stop and start again on the same port and certificate (an upstream restart). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPlant(port: number, pkiDir: string, options: PlantOptions = {}): Promise<Plant> {
  const hits: PlantHits = { setpointWrites: 0, fuelValveWrites: 0, fuelValveReads: 0, startPump: 0, resetTrip: 0 };
  const state = { level: 42.5, pressure: 11.2, setpoint: 50, fuel: 10 };
  const reached = (r: PlantReach) => options.onReach?.(r);
  let server: OPCUAServer | undefined;
  let level: UAVariable | undefined;
  let alarm: UAVariable | undefined;
  const certFile = join(pkiDir, 'plant-cert.der');

  const boot = async () => {
    // A simulated PLC accepts any client application certificate; Penstock, in front of it, does not.
    const cm = new OPCUACertificateManager({ rootFolder: join(pkiDir, 'plant'), automaticallyAcceptUnknownCertificate: true, disableFileWatchers: true });
    await cm.initialize();
    const s = new OPCUAServer({
      port,
      host: '127.0.0.1',
      hostname: '127.0.0.1',
      serverCertificateManager: cm,
      userCertificateManager: cm,
      allowAnonymous: true,
      isAuditing: false,
      serverCapabilities: { maxSessions: 100, operationLimits: { maxNodesPerRead: 1000 } },
      maxConnectionsPerEndpoint: 100,
    });
    await s.initialize();
    const as = s.engine.addressSpace!;
    const ns = as.getOwnNamespace();
    const boiler = ns.addObject({ organizedBy: as.rootFolder.objects, browseName: 'Boiler', nodeId: 's=Boiler' });
    const drum = ns.addObject({ componentOf: boiler, browseName: 'Drum', nodeId: 's=Boiler.Drum' });
    level = ns.addVariable({ componentOf: drum, browseName: 'Level', nodeId: 's=Boiler.Drum.Level', dataType: 'Double', value: { dataType: DataType.Double, value: state.level } });
    ns.addVariable({ componentOf: drum, browseName: 'Pressure', nodeId: 's=Boiler.Drum.Pressure', dataType: "Double", minimumSamplingInterval: 100, value: { get: () => new Variant({ dataType: DataType.Double, value: state.pressure }) } });
    ns.addVariable({
      componentOf: boiler, browseName: 'Setpoint', nodeId: 's=Boiler.Setpoint', dataType: 'Double', minimumSamplingInterval: 100, accessLevel: 'CurrentRead | CurrentWrite', userAccessLevel: 'CurrentRead | CurrentWrite',
      value: {
        get: () => new Variant({ dataType: DataType.Double, value: state.setpoint }),
        set: (v: Variant) => {
          hits.setpointWrites++;
          state.setpoint = v.value as number;
          reached({ kind: 'write', path: 'Boiler/Setpoint', value: v.value });
          return StatusCodes.Good;
        },
      },
    });
    const burner = ns.addObject({ componentOf: boiler, browseName: 'Burner', nodeId: 's=Boiler.Burner' });
    ns.addVariable({
      componentOf: burner, browseName: 'FuelValve', nodeId: 's=Boiler.Burner.FuelValve', dataType: 'Double', minimumSamplingInterval: 100, accessLevel: 'CurrentRead | CurrentWrite', userAccessLevel: 'CurrentRead | CurrentWrite',
      value: {
        get: () => {
          hits.fuelValveReads++;
          return new Variant({ dataType: DataType.Double, value: state.fuel });
        },
        set: (v: Variant) => {
          hits.fuelValveWrites++;
          state.fuel = v.value as number;
          reached({ kind: 'write', path: 'Boiler/Burner/FuelValve', value: v.value });
          return StatusCodes.Good;
        },
      },
    });
    const startPump = ns.addMethod(boiler, { browseName: 'StartPump', nodeId: 's=Boiler.StartPump' });
    startPump.bindMethod(async (_inputs: unknown, _context: unknown) => {
      hits.startPump++;
      reached({ kind: 'call', path: 'Boiler/StartPump', args: [] });
      return { statusCode: StatusCodes.Good };
    });
    const resetTrip = ns.addMethod(boiler, {
      browseName: 'ResetTrip', nodeId: 's=Boiler.ResetTrip',
      inputArguments: [{ name: 'reason', dataType: DataType.String, description: 'why the trip is reset' }],
      outputArguments: [{ name: 'done', dataType: DataType.Boolean }],
    });
    resetTrip.bindMethod(async (inputs: Variant[], _context: unknown) => {
      hits.resetTrip++;
      reached({ kind: 'call', path: 'Boiler/ResetTrip', args: inputs.map((v) => v.value) });
      return { statusCode: StatusCodes.Good, outputArguments: [{ dataType: DataType.Boolean, value: true }] };
    });
    const alarms = ns.addObject({ componentOf: boiler, browseName: 'Alarms', nodeId: 's=Boiler.Alarms' });
    alarm = ns.addVariable({ componentOf: alarms, browseName: 'HighLevel', nodeId: 's=Boiler.Alarms.HighLevel', dataType: 'Boolean', value: { dataType: DataType.Boolean, value: state.level > 90 } });
    const bench = ns.addFolder(as.rootFolder.objects, { browseName: 'Bench', nodeId: 's=Bench' });
    for (let i = 0; i < 100; i++) {
      const name = `V${String(i).padStart(3, '0')}`;
      ns.addVariable({ componentOf: bench, browseName: name, nodeId: `s=Bench.${name}`, dataType: 'Double', value: { dataType: DataType.Double, value: i * 1.5 } });
    }
    // A plain writable variable: a write is a data change at once (notification latency benchmark).
    ns.addVariable({ componentOf: bench, browseName: 'Knob', nodeId: 's=Bench.Knob', dataType: 'Double', accessLevel: 'CurrentRead | CurrentWrite', userAccessLevel: 'CurrentRead | CurrentWrite', value: { dataType: DataType.Double, value: 0 } });
    await s.start();
    writeFileSync(certFile, s.getCertificate());
    server = s;
  };
  await boot();
  return {
    endpoint: `opc.tcp://127.0.0.1:${port}`,
    certFile,
    hits,
    setpoint: () => state.setpoint,
    level: () => state.level,
    setLevel(v: number) {
      state.level = v;
      level?.setValueFromSource({ dataType: DataType.Double, value: v });
      alarm?.setValueFromSource({ dataType: DataType.Boolean, value: v > 90 });
    },
    async restart() {
      await server?.shutdown(0);
      server = undefined;
      await boot();
    },
    async stop() {
      await server?.shutdown(0);
      server = undefined;
    },
  };
}

/**
 * The plant as its own process (`PORT PKI_DIR`): prints one ready line
 * {"ready":true,"endpoint":…,"cert":…,"pid":N} on stdout and stops on SIGTERM.
 */
export async function runPlantProgram(argv: string[]): Promise<void> {
  const plant = await startPlant(Number(argv[0]), argv[1]!);
  process.stdout.write(`${JSON.stringify({ ready: true, endpoint: plant.endpoint, cert: plant.certFile, pid: process.pid })}\n`);
  process.once('SIGTERM', () => void plant.stop().then(() => process.exit(0)));
}

if (import.meta.main) await runPlantProgram(process.argv.slice(2));

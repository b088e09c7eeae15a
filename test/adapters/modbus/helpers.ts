// Shared by the Modbus codec tests: hex fixtures and an independent statement of the spec limits, written
// from the spec tables rather than from the codec's constants, so a wrong constant cannot pass its own test.
import assert from 'node:assert/strict';
import type { ModbusRequest } from '../../../src/adapters/modbus/codec.ts';

export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[^0-9a-fA-F]/g, ''), 'hex');
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

function inSpace(address: number, quantity: number): void {
  assert.ok(address >= 0 && quantity >= 1 && address + quantity <= 65536, `range ${address}+${quantity}`);
}

/** Throws unless a decoded request satisfies the V1.1b3 limits. */
export function assertWithinSpec(req: ModbusRequest): void {
  switch (req.kind) {
    case 'read_bits': assert.ok(req.quantity <= 0x07d0); inSpace(req.address, req.quantity); break;
    case 'read_registers': assert.ok(req.quantity <= 0x007d); inSpace(req.address, req.quantity); break;
    case 'write_single_coil': assert.ok(req.value === 0 || req.value === 1); break;
    case 'write_single_register': assert.ok(req.value >= 0 && req.value <= 0xffff); break;
    case 'no_data': assert.ok([7, 11, 12, 17].includes(req.fc)); break;
    case 'diagnostics':
      assert.ok([0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20].includes(req.subFunction));
      assert.ok(req.data.length % 2 === 0 && req.data.length >= 2);
      break;
    case 'write_multiple_coils': assert.ok(req.values.length <= 0x07b0); inSpace(req.address, req.values.length); break;
    case 'write_multiple_registers': assert.ok(req.values.length <= 0x007b); inSpace(req.address, req.values.length); break;
    case 'read_file_record':
      assert.ok(req.subRequests.length >= 1 && req.subRequests.length <= 35);
      for (const s of req.subRequests) assert.ok(s.fileNumber >= 1 && s.recordNumber <= 9999 && s.recordLength >= 1 && s.recordNumber + s.recordLength <= 10000);
      break;
    case 'write_file_record': {
      const bytes = req.subRequests.reduce((n, s) => n + 7 + 2 * s.values.length, 0);
      assert.ok(bytes >= 9 && bytes <= 0xfb);
      for (const s of req.subRequests) assert.ok(s.fileNumber >= 1 && s.recordNumber <= 9999 && s.values.length >= 1 && s.recordNumber + s.values.length <= 10000);
      break;
    }
    case 'mask_write_register': break;
    case 'read_write_registers':
      assert.ok(req.readQuantity <= 0x7d && req.values.length <= 0x79);
      inSpace(req.readAddress, req.readQuantity);
      inSpace(req.writeAddress, req.values.length);
      break;
    case 'read_fifo_queue': break;
    case 'read_device_identification': assert.ok(req.meiType === 14 && req.readDeviceIdCode >= 1 && req.readDeviceIdCode <= 4); break;
    case 'opaque':
      assert.ok(req.fc >= 1 && req.fc <= 127 && ![1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43].includes(req.fc));
      assert.ok(req.data.length <= 252);
      break;
  }
}

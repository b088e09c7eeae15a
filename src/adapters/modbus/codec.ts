// The Modbus wire codec: the one import the adapter glue needs. Pure (bytes ↔ typed frames), no sockets.
//   pdu.ts        request PDUs: decodeRequest / encodeRequest and the request types
//   response.ts   response PDUs: decodeResponse (checked against the request) / encodeResponse
//   exceptions.ts exception codes, encodeException, the decode error catalogue, exceptionForDecision
//   mbap.ts       Modbus/TCP framing: MbapDecoder (incremental), encodeMbap
//   rtu.ts        RTU framing: crc16Modbus, encodeRtu, decodeRtuFrame, RtuResponseDecoder
//   actions.ts    requestToActions: request → policy Actions
//   functions.ts  function codes and spec limits
export * from './exceptions.ts';
export * from './functions.ts';
export { decodeRequest, encodeRequest } from './pdu.ts';
export type * from './pdu.ts';
export { decodeResponse, encodeResponse, expectsResponse } from './response.ts';
export type * from './response.ts';
export * from './mbap.ts';
export { crc16Modbus, encodeRtu, decodeRtuFrame, expectedResponsePduLength, RtuResponseDecoder, RTU_MAX_FRAME, RTU_MIN_FRAME } from './rtu.ts';
export type { RtuResponseResult } from './rtu.ts';
export * from './actions.ts';

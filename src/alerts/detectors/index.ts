// The detectors by kind, built from their config (`alerts.<kind>`, config/alerts.ts).
import type { AlertsConfig } from '../../config/alerts.ts';
import type { AlertKind, Detector } from '../types.ts';
import { crossZoneDetector } from './cross-zone.ts';
import { newTargetDetector } from './new-target.ts';
import { outOfWindowDetector } from './out-of-window.ts';
import { privilegeExpansionDetector } from './privilege-expansion.ts';
import { probingDetector } from './probing.ts';
import { programmingDetector } from './programming.ts';
import { unexpectedDelegationDetector } from './unexpected-delegation.ts';
import { unusualWriteDetector } from './unusual-write.ts';

export const DETECTORS: { readonly [K in AlertKind]: (settings: AlertsConfig[K]) => Detector } = {
  new_target: newTargetDetector,
  privilege_expansion: privilegeExpansionDetector,
  out_of_window: outOfWindowDetector,
  unexpected_delegation: unexpectedDelegationDetector,
  probing: probingDetector,
  cross_zone: crossZoneDetector,
  programming: programmingDetector,
  unusual_write: unusualWriteDetector,
};

// Size bounds of config text, in a module of their own so the admin protocol (and so penstockctl) can
// use them without loading the config schemas.

/**
 * The largest config file (and config text sent to config.check) accepted: real sites are tens of KiB;
 * beyond this a check or a reload would take long enough to trip the service watchdog.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024;

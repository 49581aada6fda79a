// Firmware version; tests/host/version.test.ts keeps it equal to package.json.
export const FIRMWARE_MAJOR = 0;
export const FIRMWARE_MINOR = 1;
export const FIRMWARE_PATCH = 0;

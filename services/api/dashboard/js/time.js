// Times: always with their zone's offset ("UTC+1"), never a bare wall-clock time.

export const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

const formats = new Map();
function formatter(zone, withDate) {
  const key = `${zone}|${withDate}`;
  if (!formats.has(key)) {
    const options = {
      timeZone: zone,
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
      timeZoneName: "shortOffset",
    };
    if (withDate) Object.assign(options, { weekday: "short", day: "numeric", month: "short", year: "numeric" });
    formats.set(key, new Intl.DateTimeFormat("en-GB", options));
  }
  return formats.get(key);
}

/** True when the browser can format times in `zone`. */
export function knownZone(zone) {
  try {
    formatter(zone, true);
    return true;
  } catch {
    return false;
  }
}

/** "Mon 23 Nov 2026, 12:30:05 UTC+1" in `zone` (the viewer's by default). */
export function exact(iso, zone = viewerZone, { withDate = true } = {}) {
  if (!iso) return "—";
  const date = new Date(iso);
  let text;
  try {
    text = formatter(zone, withDate).format(date);
  } catch {
    text = formatter("UTC", withDate).format(date);
  }
  // Intl says "GMT+1" (and "GMT" for UTC itself): say UTC, the standard's name.
  return text.replace("GMT", "UTC").replace(/UTC\+0(?![\d:])/, "UTC");
}

/** The zone's offset at `iso` ("UTC+5:30"). */
export function offsetName(zone, iso = new Date().toISOString()) {
  const parts = formatter(zone, false).formatToParts(new Date(iso));
  const name = parts.find((p) => p.type === "timeZoneName");
  return name ? name.value.replace(/^GMT/, "UTC").replace(/^UTC\+0$/, "UTC") : "";
}

const UNITS = [
  ["year", 365 * 86400],
  ["month", 30 * 86400],
  ["week", 7 * 86400],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];
const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto", style: "long" });

/** "in 5 seconds", "3 minutes ago", relative to `now`. */
export function relative(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = (new Date(iso).getTime() - now) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 1) return "now";
  for (const [unit, size] of UNITS) {
    if (abs >= size || unit === "second") {
      return rtf.format(Math.trunc(seconds / size), unit);
    }
  }
  return "";
}

/** "1.2 s", "350 ms", "2 min 5 s". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60000);
  const seconds = Math.round((ms % 60000) / 1000);
  if (minutes < 60) return `${minutes} min ${seconds} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** The UTC offset of `zone` at instant `ms`, in minutes. */
function offsetMinutes(zone, ms) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(new Date(ms));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
}

/**
 * A wall-clock time "2026-11-01T09:30" (as an <input type=datetime-local> gives it)
 * read in `zone` → an ISO instant. In a skipped hour the later offset applies.
 */
export function wallToInstant(local, zone) {
  if (!local) return null;
  const [date, time = "00:00"] = local.split("T");
  const [y, mo, d] = date.split("-").map(Number);
  const [hh, mm, ss = 0] = time.split(":").map(Number);
  const guess = Date.UTC(y, mo - 1, d, hh, mm, ss);
  let instant = guess - offsetMinutes(zone, guess) * 60000;
  instant = guess - offsetMinutes(zone, instant) * 60000;
  return new Date(instant).toISOString().replace(/\.000Z$/, "Z");
}

/** An ISO instant → the wall-clock "YYYY-MM-DDTHH:MM" in `zone` (for datetime-local). */
export function instantToWall(iso, zone) {
  if (!iso) return "";
  const ms = new Date(iso).getTime();
  const local = new Date(ms + offsetMinutes(zone, ms) * 60000);
  return local.toISOString().slice(0, 16);
}

/**
 * Turns per-frame speech probabilities into speech segments, as Silero's
 * get_speech_timestamps does: hysteresis between two thresholds, a minimum
 * speech length, a minimum silence before a segment ends, and padding.
 * @module
 */

/** A span of time in seconds. */
export interface Span {
  start: number;
  end: number;
}

/** Segmentation settings, in probabilities and milliseconds. */
export interface SegmentOptions {
  threshold: number;
  minSpeechMs: number;
  minSilenceMs: number;
  padMs: number;
}

/** Speech segments from probabilities of consecutive frames of `frameSeconds` each. */
export function speechSegments(
  probabilities: ArrayLike<number>,
  frameSeconds: number,
  totalSeconds: number,
  { threshold, minSpeechMs, minSilenceMs, padMs }: SegmentOptions,
): Span[] {
  const negThreshold = Math.max(threshold - 0.15, 0.01);
  const segments: Span[] = [];
  let start = -1;
  let silenceStart = -1;
  for (let i = 0; i < probabilities.length; i++) {
    const p = probabilities[i];
    const t = i * frameSeconds;
    if (p >= threshold) {
      silenceStart = -1;
      if (start < 0) start = t;
    } else if (p < negThreshold && start >= 0) {
      if (silenceStart < 0) silenceStart = t;
      if ((t - silenceStart) * 1000 >= minSilenceMs) {
        if ((silenceStart - start) * 1000 >= minSpeechMs) segments.push({ start, end: silenceStart });
        start = -1;
        silenceStart = -1;
      }
    }
  }
  if (start >= 0 && (totalSeconds - start) * 1000 >= minSpeechMs) segments.push({ start, end: totalSeconds });
  const pad = padMs / 1000;
  const padded: Span[] = [];
  for (const s of segments) {
    const span = { start: Math.max(0, s.start - pad), end: Math.min(totalSeconds, s.end + pad) };
    const last = padded.at(-1);
    if (last && span.start <= last.end) last.end = span.end;
    else padded.push(span);
  }
  return padded;
}

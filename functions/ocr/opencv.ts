/**
 * OpenCV (`@techstark/opencv-js`, OpenCV 4.12 compiled to WebAssembly) for the
 * geometry of PP-OCR's pipeline: contours, minimum-area rectangles and the
 * perspective warp. It is pure WebAssembly, so it loads inside the isolate
 * with no permission beyond reading the function's folder.
 * @module
 */
/** The OpenCV namespace, once its WebAssembly runtime is ready. */
export type OpenCv = typeof import("@techstark/opencv-js");

let ready: Promise<OpenCv> | undefined;

/**
 * Imports OpenCV and resolves when its WebAssembly runtime is initialised
 * (call it from `setup`: it takes most of a second, see the README).
 * Emscripten's module object is a "thenable" that resolves to itself, so it
 * must never be awaited directly: that loops forever. Its `then` is removed
 * once it has fired.
 */
export function loadOpenCv(): Promise<OpenCv> {
  ready ??= import("@techstark/opencv-js").then(({ default: cvModule }) =>
    new Promise<OpenCv>((resolve) => {
      const cv = cvModule as unknown as OpenCv & {
        then?: (callback: () => void) => void;
        onRuntimeInitialized?: () => void;
        Mat?: unknown;
      };
      const done = () => {
        delete cv.then;
        resolve(cv);
      };
      if (typeof cv.then === "function") cv.then(done);
      else if (cv.Mat) done();
      else cv.onRuntimeInitialized = done;
    })
  );
  return ready;
}

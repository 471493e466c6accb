// Masks stored as grey index PNGs (engine.visualize.grey_index_png: a pixel's value in every
// channel is its class, 255 is ignored), decoded and coloured over their image on a canvas in
// the browser, so pages can toggle classes and change the opacity without new files. Shared by
// the overlay viewer (overlay_viewer.js) and the compare page (compare.js).

export const IGNORE_INDEX = 255;
const UNKNOWN_CLASS_COLOR = [255, 255, 255];

// A class colour as [r, g, b], from "#rrggbb" or an [r, g, b] list.
export function rgb(color) {
  if (Array.isArray(color)) return color.map(Number);
  const hex = String(color || "#ffffff").replace("#", "");
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16) || 0);
}

const decoded = new Map(); // url -> Promise of {width, height, pixels (RGBA)}

// The PNG at `url` as RGBA pixels, fetched and decoded once per page.
export function decode(url) {
  if (!decoded.has(url)) {
    decoded.set(url, (async () => {
      const image = new Image();
      image.src = url;
      await image.decode();
      const canvas = new OffscreenCanvas(image.naturalWidth, image.naturalHeight);
      const context = canvas.getContext("2d");
      context.drawImage(image, 0, 0);
      const data = context.getImageData(0, 0, canvas.width, canvas.height);
      return { width: canvas.width, height: canvas.height, pixels: data.data };
    })());
  }
  return decoded.get(url);
}

// Draw `image` on `canvas`, blending colorOf(i) (an [r, g, b] or null for "leave the image")
// over each pixel i (an RGBA offset) with opacity `alpha` (0..1).
export function paint(canvas, image, colorOf, alpha) {
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  const out = context.createImageData(image.width, image.height);
  for (let i = 0; i < out.data.length; i += 4) {
    const color = colorOf ? colorOf(i) : null;
    for (let c = 0; c < 3; c++) {
      out.data[i + c] = color ? (1 - alpha) * image.pixels[i + c] + alpha * color[c] : image.pixels[i + c];
    }
    out.data[i + 3] = 255;
  }
  context.putImageData(out, 0, 0);
}

// colorOf for a decoded index mask: each class in its palette colour, ignored pixels and
// classes that shown(label) refuses left as the image.
export function maskColor(mask, palette, shown = () => true) {
  return (i) => {
    const label = mask.pixels[i];
    return label !== IGNORE_INDEX && shown(label) ? palette[label] || UNKNOWN_CLASS_COLOR : null;
  };
}

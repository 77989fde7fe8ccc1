"""OpenGL rasterisation through moderngl on a headless EGL context (Mesa llvmpipe on CPU, NVIDIA on GPU).

Textures are premultiplied and blended with (ONE, ONE_MINUS_SRC_ALPHA), so linear filtering and MSAA
never produce dark halos. The projection maps pixel row 0 to the bottom of GL's viewport: GL's origin is
bottom-left, so reading the framebuffer back then yields rows top-first without a flip copy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from types import TracebackType
from typing import Any

import cv2
import moderngl
import numpy as np

from motion.errors import FailedPreconditionError

_VERTEX = """
#version 330
uniform vec2 u_size;
in vec2 in_pos;
in vec2 in_uv;
in float in_layer;
out vec3 v_uv;
void main() {
    v_uv = vec3(in_uv, in_layer);
    gl_Position = vec4(in_pos / u_size * 2.0 - 1.0, 0.0, 1.0);
}
"""
# Every layer's triangles but the face's: one bilinear fetch. llvmpipe runs both sides of a branch for
# every fragment, so the face warp below must not share this program (it cost ~45 ms of CPU per 720p
# frame when every fragment went through it behind a per-layer branch).
_FRAGMENT = """
#version 330
uniform sampler2DArray u_tex;
in vec3 v_uv;
out vec4 f_color;
void main() { f_color = texture(u_tex, v_uv); }
"""
# The face warp (services/render/face.py) remaps texture coordinates inside the eye and mouth regions
# (texture pixels). It is drawn only for the triangles of the head's layer that touch those regions
# (``face_span`` in ``Rasterizer.draw``). Gradients are taken from the unwarped coordinates so the filter
# footprint does not jump at the regions' edges.
_FACE_FRAGMENT = """
#version 330
uniform sampler2DArray u_tex;
uniform vec2 u_tex_size;
uniform vec4 u_eye0_a, u_eye0_b, u_eye1_a, u_eye1_b;  // (centre, axis), (half w, half h, closure, -)
uniform vec4 u_mouth_a, u_mouth_b;  // (centre, axis), (half w, mouth->chin, drop px, -)
uniform vec3 u_mouth_rgb;
in vec3 v_uv;
out vec4 f_color;

vec4 fetch(vec2 p_px, float layer, vec2 gx, vec2 gy) {
    return textureGrad(u_tex, vec3(p_px / u_tex_size, layer), gx, gy);
}

// A closing eye: the eye squashes toward its centre line and the band it leaves shows the skin just above
// the region; the rim is feathered into the untouched texture and a lid line marks where the lids meet.
bool eye_colour(vec2 p, vec4 a, vec4 b, float layer, vec2 gx, vec2 gy, out vec4 colour) {
    colour = vec4(0.0);
    float k = b.z;
    if (k <= 0.001) return false;
    vec2 u = a.zw;
    vec2 v = vec2(-u.y, u.x);
    vec2 d = p - a.xy;
    float s = dot(d, u);
    float t = dot(d, v);
    float q = s / b.x;
    if (abs(q) >= 1.0) return false;
    float h = b.y * sqrt(1.0 - q * q);
    if (abs(t) >= h) return false;
    float f = 1.0 - k;
    vec4 c = abs(t) < h * f ? fetch(a.xy + s * u + (t / f) * v, layer, gx, gy)
                            : fetch(a.xy + s * u - (b.y + 1.0) * v, layer, gx, gy);
    float r = length(vec2(q, t / b.y));
    c = mix(c, fetch(p, layer, gx, gy), smoothstep(0.75, 1.0, r));
    float line = smoothstep(0.4, 1.0, k) * (1.0 - smoothstep(0.0, max(0.6, 0.12 * b.y), abs(abs(t) - h * f)))
                 * (1.0 - q * q);
    c.rgb *= 1.0 - 0.5 * line;
    colour = c;
    return true;
}

vec2 mouth_warp(vec2 p, vec4 a, vec4 b, out float dark) {
    dark = 0.0;
    float drop = b.z;
    if (drop <= 0.01) return p;
    vec2 u = a.zw;
    vec2 v = vec2(-u.y, u.x);
    vec2 d = p - a.xy;
    float s = dot(d, u);
    float t = dot(d, v);
    float q = s / (1.25 * b.x);
    if (abs(q) >= 1.0 || t <= 0.0) return p;
    float c = cos(q * 1.5707963);
    float gap = drop * c * c;
    // Lower lip and chin move down together; below the chin the shift fades out into the neck.
    float fall = 1.0 - smoothstep(b.y, 1.6 * b.y, t);
    dark = clamp(gap - t + 0.5, 0.0, 1.0);
    return p - max(gap * fall, 0.0) * v;
}

void main() {
    vec2 gx = dFdx(v_uv.xy);
    vec2 gy = dFdy(v_uv.xy);
    vec2 p = v_uv.xy * u_tex_size;
    vec4 c;
    if (eye_colour(p, u_eye0_a, u_eye0_b, v_uv.z, gx, gy, c) || eye_colour(p, u_eye1_a, u_eye1_b, v_uv.z, gx, gy, c)) {
        f_color = c;
        return;
    }
    float dark;
    p = mouth_warp(p, u_mouth_a, u_mouth_b, dark);
    c = fetch(p, v_uv.z, gx, gy);
    f_color = mix(c, vec4(u_mouth_rgb, 1.0), dark * c.a);
}
"""
# Outline pass (services/render/outline.py): only a layer's stroke texels (luma below u_outline_luma), faded
# in over u_outline_soft, so overlapping limbs keep each other's outlines ("darkest wins" for strokes).
_OUTLINE_FRAGMENT = """
#version 330
uniform sampler2DArray u_tex;
uniform float u_outline_luma;
uniform float u_outline_soft;
in vec3 v_uv;
out vec4 f_color;
void main() {
    vec4 c = texture(u_tex, v_uv);
    if (c.a < 0.5) discard;
    float l = dot(c.rgb / c.a, vec3(0.2126, 0.7152, 0.0722));
    float w = clamp((u_outline_luma - l) / u_outline_soft, 0.0, 1.0);
    if (w <= 0.0) discard;
    f_color = c * w;
}
"""
# Straight-alpha output for transparent video: a second pass divides colour by alpha (on the GPU/llvmpipe
# rather than in numpy, which costs more than the whole draw at 1080p).
_UNPREMUL_FRAGMENT = """
#version 330
uniform sampler2D u_bg;
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec4 c = texelFetch(u_bg, ivec2(gl_FragCoord.xy), 0);
    f_color = c.a > 0.0 ? vec4(min(c.rgb / c.a, vec3(1.0)), c.a) : vec4(0.0);
}
"""
# RGB -> I420 (BT.709, limited range) packed into one (H * 3/2, W) 8-bit image exactly as PyAV's
# ``VideoFrame.from_ndarray(..., format="yuv420p")`` expects: Y rows, then the U plane (two chroma rows per
# W-wide row), then V. Doing this on the GPU/llvmpipe replaces the encoder's swscale pass and reads back
# 1.5 instead of 4 bytes per pixel.
_I420_FRAGMENT = """
#version 330
uniform sampler2D u_bg;
uniform ivec2 u_frame;
in vec2 v_uv;
out vec4 f_color;
const vec3 KY = vec3(0.2126, 0.7152, 0.0722);
void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    int w = u_frame.x, h = u_frame.y;
    if (p.y < h) {
        vec3 c = texelFetch(u_bg, p, 0).rgb;
        f_color = vec4((16.0 + 219.0 * dot(c, KY)) / 255.0, 0.0, 0.0, 1.0);
        return;
    }
    int r = p.y - h;
    bool is_v = r >= h / 4;
    if (is_v) r -= h / 4;
    int half_w = w / 2;
    int cy = 2 * r + (p.x >= half_w ? 1 : 0);
    int cx = p.x - (p.x >= half_w ? half_w : 0);
    ivec2 q = ivec2(2 * cx, 2 * cy);
    vec3 c = 0.25 * (texelFetch(u_bg, q, 0).rgb + texelFetch(u_bg, q + ivec2(1, 0), 0).rgb
                     + texelFetch(u_bg, q + ivec2(0, 1), 0).rgb + texelFetch(u_bg, q + ivec2(1, 1), 0).rgb);
    float y = dot(c, KY);
    float chroma = is_v ? (c.r - y) / 1.5748 : (c.b - y) / 1.8556;
    f_color = vec4((128.0 + 224.0 * chroma) / 255.0, 0.0, 0.0, 1.0);
}
"""
# The same conversion writing four consecutive bytes of the packed I420 image per RGBA8 fragment: llvmpipe's
# cost is mostly per fragment, so a (W/4, H * 3/2) target shades 4x fewer fragments than the R8 one for the
# same bytes (each byte is the same expression as in _I420_FRAGMENT, so the output is byte-identical). Needs
# W % 8 == 0 so no 4-byte group straddles the two chroma rows packed in one W-wide row.
_I420_PACKED_FRAGMENT = """
#version 330
uniform sampler2D u_bg;
uniform ivec2 u_frame;
out vec4 f_color;
const vec3 KY = vec3(0.2126, 0.7152, 0.0722);
float luma(ivec2 p) {
    vec3 c = texelFetch(u_bg, p, 0).rgb;
    return (16.0 + 219.0 * dot(c, KY)) / 255.0;
}
float chroma(int x, int r, bool is_v, int w) {
    int half_w = w / 2;
    int cy = 2 * r + (x >= half_w ? 1 : 0);
    int cx = x - (x >= half_w ? half_w : 0);
    ivec2 q = ivec2(2 * cx, 2 * cy);
    vec3 c = 0.25 * (texelFetch(u_bg, q, 0).rgb + texelFetch(u_bg, q + ivec2(1, 0), 0).rgb
                     + texelFetch(u_bg, q + ivec2(0, 1), 0).rgb + texelFetch(u_bg, q + ivec2(1, 1), 0).rgb);
    float y = dot(c, KY);
    float k = is_v ? (c.r - y) / 1.5748 : (c.b - y) / 1.8556;
    return (128.0 + 224.0 * k) / 255.0;
}
void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    int w = u_frame.x, h = u_frame.y;
    int x = 4 * p.x;
    if (p.y < h) {
        f_color = vec4(luma(ivec2(x, p.y)), luma(ivec2(x + 1, p.y)), luma(ivec2(x + 2, p.y)),
                       luma(ivec2(x + 3, p.y)));
        return;
    }
    int r = p.y - h;
    bool is_v = r >= h / 4;
    if (is_v) r -= h / 4;
    f_color = vec4(chroma(x, r, is_v, w), chroma(x + 1, r, is_v, w), chroma(x + 2, r, is_v, w),
                   chroma(x + 3, r, is_v, w));
}
"""
_BG_VERTEX = """
#version 330
in vec2 in_pos;
out vec2 v_uv;
void main() { v_uv = in_pos; gl_Position = vec4(in_pos * 2.0 - 1.0, 0.0, 1.0); }
"""
_BG_FRAGMENT = """
#version 330
uniform sampler2D u_bg;
in vec2 v_uv;
out vec4 f_color;
void main() { f_color = texture(u_bg, v_uv); }
"""

# One context per process and thread is enough; creating EGL contexts repeatedly leaks in some drivers.
_CTX_LOCK = threading.Lock()


def create_context() -> moderngl.Context:
    """A standalone EGL context (headless); raises FailedPreconditionError with a hint when EGL is absent."""
    try:
        with _CTX_LOCK:
            device = os.environ.get("MOTION_EGL_DEVICE")
            kwargs: dict[str, object] = {"standalone": True, "backend": "egl"}
            if device:
                kwargs["device_index"] = int(device)
            return moderngl.create_context(**kwargs)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any EGL/driver failure means the same thing to the user
        raise FailedPreconditionError(
            "render.egl_unavailable: cannot create an OpenGL context through EGL "
            f"({exc}); install libegl1 libegl-mesa0 libgl1-mesa-dri", rule="render.egl_unavailable",
            limit="EGL + OpenGL 3.3", actual=str(exc)) from exc


@functools.cache
def _gl_proc(name: str, *argtypes: Any) -> Any:
    """A GL entry point through EGL (a ctypes function taking ``argtypes``), or None where it cannot be
    found. ctypes releases the GIL for the call."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("EGL") or "libEGL.so.1")
        get = lib.eglGetProcAddress
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
        addr = get(name.encode())
    except (OSError, AttributeError):
        return None
    return ctypes.CFUNCTYPE(None, *argtypes)(addr) if addr else None


def _flush() -> None:
    """Hands the queued frame to the driver without waiting for it (moderngl has only finish)."""
    fn = _gl_proc("glFlush")
    if fn is not None:
        fn()


_GL_PACK_ALIGNMENT, _GL_PIXEL_PACK_BUFFER, _GL_RGBA, _GL_UNSIGNED_BYTE = 0x0D05, 0x88EB, 0x1908, 0x1401
_GL_COLOR_ATTACHMENT0 = 0x8CE0
_GL_READ_FRAMEBUFFER, _GL_DRAW_FRAMEBUFFER, _GL_COLOR_BUFFER_BIT, _GL_NEAREST = 0x8CA8, 0x8CA9, 0x4000, 0x2600
_U, _I = ctypes.c_uint, ctypes.c_int


def _blit_nogil(dst: moderngl.Framebuffer, src: moderngl.Framebuffer, width_px: int, height_px: int) -> bool:
    """``ctx.copy_framebuffer(dst, src)`` for single-attachment framebuffers of one size, through ctypes: on
    llvmpipe the copy (and its wait for the previous frame's use of the target) runs in the calling thread,
    and moderngl holds the GIL for it (the next largest GIL holder after the readback). The caller binds a
    framebuffer through moderngl afterwards (GL_FRAMEBUFFER), as copy_framebuffer would restore it."""
    bind = _gl_proc("glBindFramebuffer", _U, _U)
    blit = _gl_proc("glBlitFramebuffer", _I, _I, _I, _I, _I, _I, _I, _I, _U, _U)
    if bind is None or blit is None:
        return False
    bind(_GL_READ_FRAMEBUFFER, src.glo)
    bind(_GL_DRAW_FRAMEBUFFER, dst.glo)
    blit(0, 0, width_px, height_px, 0, 0, width_px, height_px, _GL_COLOR_BUFFER_BIT, _GL_NEAREST)
    return True


def _read_rgba_nogil(fbo: moderngl.Framebuffer, out: np.ndarray) -> bool:
    """glReadPixels of ``fbo``'s first colour attachment into ``out`` (H, W, 4) through ctypes, so the wait for
    the frame and the copy (~2 ms a 720p frame on llvmpipe) run without the GIL: moderngl's read holds it, the
    largest GIL holder of a render (py-spy --gil), stalling the other range's thread and the encoders. The
    same call and state as moderngl's read (pack alignment 1, no pack buffer), so the same bytes. False when
    the entry points are missing (then the caller reads through moderngl)."""
    read = _gl_proc("glReadPixels", _I, _I, _I, _I, _U, _U, ctypes.c_void_p)
    store = _gl_proc("glPixelStorei", _U, _I)
    bind = _gl_proc("glBindBuffer", _U, _U)
    source = _gl_proc("glReadBuffer", _U)
    if read is None or store is None or bind is None or source is None:
        return False
    fbo.use()  # moderngl binds it (and tracks the binding)
    source(_GL_COLOR_ATTACHMENT0)
    bind(_GL_PIXEL_PACK_BUFFER, 0)
    store(_GL_PACK_ALIGNMENT, 1)
    read(0, 0, out.shape[1], out.shape[0], _GL_RGBA, _GL_UNSIGNED_BYTE, out.ctypes.data)
    return True


def downscale_textures(textures: np.ndarray, scale: float) -> np.ndarray:
    """(layers, H, W, 4) premultiplied textures area-averaged to ``scale`` of their size (unchanged for a
    scale of 1 or more: magnified textures are sampled bilinearly as they are)."""
    n, h, w = textures.shape[:3]
    if scale >= 1.0 or n == 0:
        return textures
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    if (sw, sh) == (w, h):
        return textures
    out = np.empty((n, sh, sw, 4), dtype=np.uint8)
    for i in range(n):
        # Premultiplied colour averages without dark fringes; INTER_AREA is a box filter, exact per run.
        out[i] = cv2.resize(textures[i], (sw, sh), interpolation=cv2.INTER_AREA)
    return out


class Rasterizer:
    """Draws textured, skinned layer meshes over a background into an RGBA frame."""

    def __init__(self, width_px: int, height_px: int, layer_textures: np.ndarray, uvs: np.ndarray,
                 layer_ids: np.ndarray, background_premul: np.ndarray | None, samples: int = 0,
                 straight_alpha: bool = False, pack_i420: bool = True, texture_scale: float = 1.0) -> None:
        """``layer_textures``: (layers, H, W, 4) premultiplied, in character-image pixels; ``uvs`` are
        normalised to them. ``texture_scale``: output pixels per texture pixel; textures drawn smaller than
        they are get resampled once here (area average) to the size they are drawn at, so a plain bilinear
        fetch is enough (trilinear mipmapping costs ~50 % more per fragment on llvmpipe, and the levels take
        a JIT-compiled pass in every new context)."""
        self.width_px, self.height_px = int(width_px), int(height_px)
        self.ctx = create_context()
        ctx = self.ctx
        n_layers, th, tw = layer_textures.shape[:3]
        textures = downscale_textures(layer_textures, texture_scale)
        sh, sw = textures.shape[1:3]
        self._tex = ctx.texture_array((sw, sh, n_layers), 4, np.ascontiguousarray(textures).tobytes())
        self._tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self._tex.repeat_x = self._tex.repeat_y = False
        self._prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self._prog["u_size"].value = (float(self.width_px), float(self.height_px))  # type: ignore[union-attr]
        # Face warp regions are in the original texture's pixels whatever size it was uploaded at.
        self._face_prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FACE_FRAGMENT)
        self._face_prog["u_size"].value = (float(self.width_px), float(self.height_px))  # type: ignore[union-attr]
        self._face_prog["u_tex_size"].value = (float(tw), float(th))  # type: ignore[union-attr]
        n_v = len(uvs)
        self._pos = ctx.buffer(reserve=max(n_v, 1) * 8)
        static = np.concatenate([uvs.astype(np.float32), layer_ids.astype(np.float32)[:, None]], axis=1)
        self._static = ctx.buffer(np.ascontiguousarray(static).tobytes())
        self._index = ctx.buffer(reserve=4)
        self._n_v = n_v
        self._bg_tex: moderngl.Texture | None = None
        self._bg_fbo: moderngl.Framebuffer | None = None
        self._bg_vao: moderngl.VertexArray | None = None
        if background_premul is not None:
            bh, bw = background_premul.shape[:2]
            if (bw, bh) != (self.width_px, self.height_px):
                raise ValueError(f"background is {bw}x{bh}, the frame {self.width_px}x{self.height_px}")
            # The background is uploaded once into its own framebuffer and blitted at the start of each
            # frame: a copy is much cheaper than drawing a textured full-screen quad on llvmpipe.
            self._bg_tex = ctx.texture((bw, bh), 4, np.ascontiguousarray(background_premul).tobytes())
            self._bg_fbo = ctx.framebuffer(color_attachments=[self._bg_tex])
            # GL cannot blit into a multisampled target: with MSAA the background is drawn as a quad.
            bg_prog = ctx.program(vertex_shader=_BG_VERTEX, fragment_shader=_BG_FRAGMENT)
            quad = np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype=np.float32)
            self._bg_vao = ctx.vertex_array(bg_prog, [(ctx.buffer(quad.tobytes()), "2f", "in_pos")])
        # The texture's own alpha already anti-aliases every silhouette (meshes extend past the mask), so
        # MSAA is optional; it mostly smooths internal layer cuts and costs ~3x the fill on llvmpipe.
        samples = min(samples, ctx.max_samples) if samples > 1 else 0
        size = (self.width_px, self.height_px)
        self._straight = straight_alpha
        self._colour = ctx.texture(size, 4)
        self._resolved = ctx.framebuffer(color_attachments=[self._colour])
        self._msaa = (ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, 4, samples=samples)])
                      if samples else self._resolved)
        self._final = self._resolved
        self._unpremul_vao: moderngl.VertexArray | None = None
        if straight_alpha:
            self._final = ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, 4)])
            unpremul = ctx.program(vertex_shader=_BG_VERTEX, fragment_shader=_UNPREMUL_FRAGMENT)
            quad = np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype=np.float32)
            self._unpremul_vao = ctx.vertex_array(unpremul, [(ctx.buffer(quad.tobytes()), "2f", "in_pos")])
        self._i420_fbo: moderngl.Framebuffer | None = None
        self._i420_packed = False
        self._i420_vao: moderngl.VertexArray | None = None
        if self.width_px % 2 == 0 and self.height_px % 4 == 0 and not straight_alpha:
            self._i420_packed = pack_i420 and self.width_px % 8 == 0
            if self._i420_packed:
                self._i420_fbo = ctx.framebuffer(color_attachments=[
                    ctx.renderbuffer((self.width_px // 4, self.height_px * 3 // 2), 4)])
            else:
                self._i420_fbo = ctx.framebuffer(color_attachments=[
                    ctx.renderbuffer((self.width_px, self.height_px * 3 // 2), 1)])
            i420 = ctx.program(vertex_shader=_BG_VERTEX,
                               fragment_shader=_I420_PACKED_FRAGMENT if self._i420_packed else _I420_FRAGMENT)
            i420["u_frame"].value = (self.width_px, self.height_px)  # type: ignore[union-attr]
            quad = np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype=np.float32)
            self._i420_vao = ctx.vertex_array(i420, [(ctx.buffer(quad.tobytes()), "2f", "in_pos")])
        self._vao: moderngl.VertexArray | None = None
        self._face_vao: moderngl.VertexArray | None = None
        self._index_capacity = 0
        self._outline_prog: moderngl.Program | None = None
        self._outline_vao: moderngl.VertexArray | None = None
        self._outline_index = ctx.buffer(reserve=4)
        self._outline_capacity = 0

    def __enter__(self) -> Rasterizer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.ctx.release()

    def _ensure_vao(self, n_indices: int) -> moderngl.VertexArray:
        if self._vao is None or n_indices * 4 > self._index_capacity:
            self._index_capacity = max(n_indices * 4, 4)
            self._index.orphan(self._index_capacity)
            attrs = [(self._pos, "2f", "in_pos"), (self._static, "2f 1f", "in_uv", "in_layer")]
            self._vao = self.ctx.vertex_array(self._prog, attrs, index_buffer=self._index, index_element_size=4)
            self._face_vao = self.ctx.vertex_array(self._face_prog, attrs, index_buffer=self._index,
                                                   index_element_size=4)
        return self._vao

    @property
    def supports_i420(self) -> bool:
        return self._i420_fbo is not None

    @property
    def software(self) -> bool:
        """True on a CPU rasteriser (Mesa llvmpipe/softpipe), where every shaded fragment costs CPU time."""
        name = str(self.ctx.info.get("GL_RENDERER", "")).lower()
        return any(k in name for k in ("llvmpipe", "softpipe", "swrast"))

    @property
    def prefers_i420(self) -> bool:
        """Whether packed I420 from the shader is the cheaper route to a yuv420p encoder. On llvmpipe it is
        not: the conversion pass costs ~9 ms of CPU per 720x1080 frame against ~2.7 ms for swscale from the
        RGBA read back (run in the encoder's thread); a GPU converts for free and reads back 1.5 instead of
        4 bytes per pixel."""
        return self.supports_i420 and not self.software

    def set_outline(self, luma: float, soft: float) -> None:
        """Enables the outline pass (draws given as ``outline_indices``) for strokes darker than ``luma``."""
        if self._outline_prog is None:
            self._outline_prog = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_OUTLINE_FRAGMENT)
            self._outline_prog["u_size"].value = (float(self.width_px), float(self.height_px))  # type: ignore[union-attr]
        self._outline_prog["u_outline_luma"].value = float(luma)  # type: ignore[union-attr]
        self._outline_prog["u_outline_soft"].value = float(max(soft, 1e-3))  # type: ignore[union-attr]

    def _draw_outline(self, indices: np.ndarray) -> None:
        if self._outline_prog is None or not len(indices):
            return
        idx = np.ascontiguousarray(indices, dtype=np.int32).ravel()
        if self._outline_vao is None or len(idx) * 4 > self._outline_capacity:
            self._outline_capacity = max(len(idx) * 4, 4)
            self._outline_index.orphan(self._outline_capacity)
            self._outline_vao = self.ctx.vertex_array(
                self._outline_prog, [(self._pos, "2f", "in_pos"), (self._static, "2f 1f", "in_uv", "in_layer")],
                index_buffer=self._outline_index, index_element_size=4)
        self._outline_index.write(idx.tobytes())
        self._outline_vao.render(moderngl.TRIANGLES, vertices=len(idx))

    def set_face(self, uniforms: dict[str, tuple[float, ...]],
                 mouth_rgb: tuple[float, float, float] = (0.16, 0.05, 0.06)) -> None:
        """Face warp for the next draws' ``face_span`` triangles, with ``uniforms`` from
        ``services.render.face.shader_uniforms`` (a draw without ``face_span`` uses no warp)."""
        prog = self._face_prog
        prog["u_mouth_rgb"].value = tuple(float(c) for c in mouth_rgb)  # type: ignore[union-attr]
        for name in ("u_eye0_a", "u_eye0_b", "u_eye1_a", "u_eye1_b", "u_mouth_a", "u_mouth_b"):
            prog[name].value = tuple(float(x) for x in uniforms.get(name, (0.0, 0.0, 0.0, 0.0)))  # type: ignore[union-attr]

    def draw_i420(self, positions_px: np.ndarray, indices: np.ndarray,
                  outline_indices: np.ndarray | None = None, face_span: tuple[int, int] | None = None) -> np.ndarray:
        """Renders one opaque frame and returns it as packed I420 (H * 3/2, W) uint8 (BT.709, limited)."""
        self.submit(positions_px, indices, outline_indices, face_span, i420=True)
        return self.read(i420=True)

    def draw(self, positions_px: np.ndarray, indices: np.ndarray,
             outline_indices: np.ndarray | None = None, face_span: tuple[int, int] | None = None) -> np.ndarray:
        """Renders one frame; triangles are drawn in ``indices`` order (back to front). Returns (H, W, 4)
        uint8 RGBA (premultiplied, or straight with ``straight_alpha``), row 0 at the top. ``outline_indices``:
        triangles whose strokes are drawn again on top (see ``set_outline``). ``face_span``: (first, count)
        triangles of ``indices`` drawn with the face warp (see ``set_face``); None: no warp this frame."""
        self.submit(positions_px, indices, outline_indices, face_span)
        return self.read()

    def submit(self, positions_px: np.ndarray, indices: np.ndarray,
               outline_indices: np.ndarray | None = None, face_span: tuple[int, int] | None = None,
               i420: bool = False) -> None:
        """Queues one frame's drawing (see ``draw``) and starts it: the driver rasterises (llvmpipe: in its
        own threads) while the caller prepares the next frame; ``read`` then waits for the pixels."""
        if i420 and (self._i420_fbo is None or self._i420_vao is None):
            raise ValueError("I420 output needs an opaque frame with width % 2 == 0 and height % 4 == 0")
        self._compose(positions_px, indices, outline_indices, face_span)
        ctx = self.ctx
        if i420 and self._i420_fbo is not None and self._i420_vao is not None:
            self._i420_fbo.use()
            ctx.disable(moderngl.BLEND)
            self._colour.use(0)
            self._i420_vao.render(moderngl.TRIANGLE_STRIP)
        elif self._unpremul_vao is not None:
            self._final.use()
            ctx.disable(moderngl.BLEND)
            self._colour.use(0)
            self._unpremul_vao.render(moderngl.TRIANGLE_STRIP)
        _flush()

    def read(self, i420: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """The pixels of the last ``submit`` (with the same ``i420``). ``out``: a writable C-contiguous
        (H, W, 4) uint8 array (RGBA only) the pixels are read into and that is returned (else a new one)."""
        if i420:
            if self._i420_fbo is None:
                raise ValueError("I420 output needs an opaque frame with width % 2 == 0 and height % 4 == 0")
            data = self._i420_fbo.read(components=4 if self._i420_packed else 1, alignment=1)
            return np.frombuffer(data, dtype=np.uint8).reshape(self.height_px * 3 // 2, self.width_px)
        if out is None:
            out = np.empty((self.height_px, self.width_px, 4), dtype=np.uint8)
        elif out.shape != (self.height_px, self.width_px, 4) or out.dtype != np.uint8 \
                or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"read(out=) needs a writable C-contiguous ({self.height_px}, {self.width_px}, 4) "
                             f"uint8 array, got {out.shape} {out.dtype}")
        if not _read_rgba_nogil(self._final, out):
            self._final.read_into(out, components=4, alignment=1)
        return out

    def _compose(self, positions_px: np.ndarray, indices: np.ndarray,
                 outline_indices: np.ndarray | None = None, face_span: tuple[int, int] | None = None) -> None:
        """Background + layers into the (resolved) colour texture."""
        ctx = self.ctx
        self._pos.write(np.ascontiguousarray(positions_px, dtype=np.float32).tobytes())
        idx = np.ascontiguousarray(indices, dtype=np.int32).ravel()
        vao = self._ensure_vao(len(idx))
        self._index.write(idx.tobytes())
        multisampled = self._msaa is not self._resolved
        if self._bg_fbo is not None and not multisampled:
            if not _blit_nogil(self._msaa, self._bg_fbo, self.width_px, self.height_px):
                ctx.copy_framebuffer(self._msaa, self._bg_fbo)
            self._msaa.use()
        else:
            self._msaa.use()
            ctx.clear(0.0, 0.0, 0.0, 0.0)
        ctx.enable(moderngl.BLEND)
        ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA
        if multisampled and self._bg_vao is not None and self._bg_tex is not None:
            self._bg_tex.use(0)
            self._bg_vao.render(moderngl.TRIANGLE_STRIP)
        self._tex.use(0)
        first, count = face_span if face_span is not None else (0, 0)
        first, count = 3 * max(0, first), 3 * max(0, count)  # triangles -> index elements
        if count and first + count <= len(idx) and self._face_vao is not None:
            if first:
                vao.render(moderngl.TRIANGLES, vertices=first)
            self._face_vao.render(moderngl.TRIANGLES, vertices=count, first=first)
            if first + count < len(idx):
                vao.render(moderngl.TRIANGLES, vertices=len(idx) - first - count, first=first + count)
        else:
            vao.render(moderngl.TRIANGLES, vertices=len(idx))
        if outline_indices is not None:
            self._draw_outline(outline_indices)
        if self._msaa is not self._resolved:
            ctx.copy_framebuffer(self._resolved, self._msaa)

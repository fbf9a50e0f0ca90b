import Foundation
import TensorCore

/// Bilinear resampling of byte images, with the cropping and flipping of the torchvision
/// transforms folded into one pass.
///
/// **Semantics matched:** PyTorch's `F.interpolate(mode="bilinear", align_corners=False,
/// antialias=False)` (torchvision `Resize(..., antialias=False)` on tensors): half-pixel centres,
/// source coordinate `s = (d + 0.5) * inSize / outSize - 0.5`, clamped below at 0;
/// `i0 = floor(s)`, `i1 = min(i0 + 1, inSize - 1)`, `lambda = s - i0`; value
/// `(1 - ly) * ((1 - lx) * p00 + lx * p01) + ly * ((1 - lx) * p10 + lx * p11)` in Float32, then
/// rounded to nearest (halves up) into 0...255. Without antialiasing, large downscales alias
/// (PIL's `Image.resize(BILINEAR)` widens the filter support instead); upscales and identity
/// sizes agree with PIL up to rounding.
public enum Bilinear {
    /// The sampling positions along one axis: for each output index d, the two source indices
    /// and the weight of the second (`lambda`).
    public static func axis(inSize: Int, outSize: Int) -> (i0: [Int], i1: [Int], lambda: [Float]) {
        precondition(inSize > 0 && outSize > 0, "Bilinear.axis: sizes must be > 0, got in \(inSize), out \(outSize)")
        let scale = Float(inSize) / Float(outSize)
        var i0 = [Int](repeating: 0, count: outSize)
        var i1 = [Int](repeating: 0, count: outSize)
        var lambda = [Float](repeating: 0, count: outSize)
        for d in 0..<outSize {
            let s = max((Float(d) + 0.5) * scale - 0.5, 0)
            let lo = min(Int(s), inSize - 1)
            i0[d] = lo
            i1[d] = lo < inSize - 1 ? lo + 1 : lo
            lambda[d] = s - Float(lo)
        }
        return (i0, i1, lambda)
    }

    /// Resizes the `cropHeight x cropWidth` window at (`cropTop`, `cropLeft`) of `source`
    /// (`[channels, height, width]`) to `resizedHeight x resizedWidth`, and writes the
    /// `outHeight x outWidth` window of that resized image starting at (`offsetY`, `offsetX`)
    /// into `destination` (`[channels, outHeight, outWidth]`), mirrored left-right when `flip`
    /// (output column x takes resized column `outWidth - 1 - x + offsetX`). Resized positions
    /// outside the resized image (a centre crop larger than the image) are 0, as torchvision's
    /// `CenterCrop` pads.
    public static func resample(_ source: UnsafeBufferPointer<UInt8>, channels: Int, height: Int, width: Int,
                                cropTop: Int, cropLeft: Int, cropHeight: Int, cropWidth: Int,
                                resizedHeight: Int, resizedWidth: Int,
                                offsetY: Int = 0, offsetX: Int = 0, outHeight: Int, outWidth: Int,
                                flip: Bool = false, into destination: UnsafeMutableBufferPointer<UInt8>) {
        precondition(source.count == channels * height * width,
                     "Bilinear.resample: source has \(source.count) bytes, expected [C=\(channels), H=\(height), W=\(width)]")
        precondition(cropTop >= 0 && cropLeft >= 0 && cropHeight >= 1 && cropWidth >= 1
                     && cropTop + cropHeight <= height && cropLeft + cropWidth <= width,
                     "Bilinear.resample: crop (top \(cropTop), left \(cropLeft), \(cropHeight)x\(cropWidth)) outside the \(height)x\(width) image")
        precondition(destination.count == channels * outHeight * outWidth,
                     "Bilinear.resample: destination has \(destination.count) bytes, expected [C=\(channels), H=\(outHeight), W=\(outWidth)]")
        let ys = axis(inSize: cropHeight, outSize: resizedHeight)
        let xs = axis(inSize: cropWidth, outSize: resizedWidth)
        // Per output column: source columns and weight, or -1 for padding.
        var col0 = [Int](repeating: -1, count: outWidth)
        var col1 = [Int](repeating: -1, count: outWidth)
        var wx = [Float](repeating: 0, count: outWidth)
        for x in 0..<outWidth {
            let rx = (flip ? outWidth - 1 - x : x) + offsetX
            if rx >= 0 && rx < resizedWidth {
                col0[x] = cropLeft + xs.i0[rx]
                col1[x] = cropLeft + xs.i1[rx]
                wx[x] = xs.lambda[rx]
            }
        }
        // Output columns with a source are one contiguous run [xBegin, xEnd) (padding only at
        // the ends), so the inner loop has no per-pixel branch.
        var xBegin = 0
        while xBegin < outWidth && col0[xBegin] < 0 { xBegin += 1 }
        var xEnd = xBegin
        while xEnd < outWidth && col0[xEnd] >= 0 { xEnd += 1 }
        let plane = height * width, outPlane = outHeight * outWidth
        col0.withUnsafeBufferPointer { c0 in
            col1.withUnsafeBufferPointer { c1 in
                wx.withUnsafeBufferPointer { lx in
                    for y in 0..<outHeight {
                        let ry = y + offsetY
                        let inside = ry >= 0 && ry < resizedHeight
                        for c in 0..<channels {
                            let dst = c * outPlane + y * outWidth
                            if !inside {
                                for x in 0..<outWidth { destination[dst + x] = 0 }
                                continue
                            }
                            for x in 0..<xBegin { destination[dst + x] = 0 }
                            for x in xEnd..<outWidth { destination[dst + x] = 0 }
                            let row0 = source.baseAddress! + c * plane + (cropTop + ys.i0[ry]) * width
                            let row1 = source.baseAddress! + c * plane + (cropTop + ys.i1[ry]) * width
                            let ly = ys.lambda[ry], ky = 1 - ly
                            let out = destination.baseAddress! + dst
                            for x in xBegin..<xEnd {
                                let a = c0[x], b = c1[x]
                                let w = lx[x], kw = 1 - w
                                let top = kw * Float(row0[a]) + w * Float(row0[b])
                                let bottom = kw * Float(row1[a]) + w * Float(row1[b])
                                let v = ky * top + ly * bottom + 0.5
                                out[x] = UInt8(min(max(v, 0), 255))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The evaluation transform of ImageNet-style folders: torchvision's `Resize(resizeShorterSide)`
/// followed by `CenterCrop(cropSize)` (the usual pair is 256 / 224; for 32x32 sets, 32 / 32).
///
/// Resize: the shorter side becomes `resizeShorterSide`, the longer one
/// `Int(resizeShorterSide * long / short)` (truncated, as torchvision), bilinear as `Bilinear`.
/// Centre crop: top `round((h - crop) / 2)` with Python's round-half-to-even, likewise left;
/// when the crop is larger than the resized image it is zero-padded as torchvision does
/// (`(crop - h) / 2` rows above, floored).
public struct ResizeCenterCrop: Sendable, Equatable {
    public var resizeShorterSide: Int
    public var cropHeight: Int
    public var cropWidth: Int

    public init(resizeShorterSide: Int, cropSize: Int) {
        self.init(resizeShorterSide: resizeShorterSide, cropHeight: cropSize, cropWidth: cropSize)
    }

    public init(resizeShorterSide: Int, cropHeight: Int, cropWidth: Int) {
        precondition(resizeShorterSide >= 1 && cropHeight >= 1 && cropWidth >= 1,
                     "ResizeCenterCrop: sizes must be >= 1, got resize \(resizeShorterSide), crop \(cropHeight)x\(cropWidth)")
        self.resizeShorterSide = resizeShorterSide
        self.cropHeight = cropHeight
        self.cropWidth = cropWidth
    }

    /// Size after the resize step for an `height x width` input.
    public func resizedSize(height: Int, width: Int) -> (height: Int, width: Int) {
        let r = resizeShorterSide
        if height <= width {
            return (r, Int(Double(r * width) / Double(height)))
        }
        return (Int(Double(r * height) / Double(width)), r)
    }

    /// Offset of the crop in the resized image (negative = zero padding before the image).
    static func cropOffset(size: Int, crop: Int) -> Int {
        if crop > size { return -((crop - size) / 2) }
        return Int((Double(size - crop) / 2).rounded(.toNearestOrEven))
    }

    /// Applies the transform: `[C, cropHeight, cropWidth]`.
    public func apply(_ image: DecodedImage) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: image.channels * cropHeight * cropWidth)
        out.withUnsafeMutableBufferPointer { apply(image, into: $0) }
        return out
    }

    /// Applies the transform into `destination`, `[C, cropHeight, cropWidth]`.
    public func apply(_ image: DecodedImage, into destination: UnsafeMutableBufferPointer<UInt8>) {
        let resized = resizedSize(height: image.height, width: image.width)
        image.pixels.withUnsafeBufferPointer { src in
            Bilinear.resample(src, channels: image.channels, height: image.height, width: image.width,
                              cropTop: 0, cropLeft: 0, cropHeight: image.height, cropWidth: image.width,
                              resizedHeight: resized.height, resizedWidth: resized.width,
                              offsetY: ResizeCenterCrop.cropOffset(size: resized.height, crop: cropHeight),
                              offsetX: ResizeCenterCrop.cropOffset(size: resized.width, crop: cropWidth),
                              outHeight: cropHeight, outWidth: cropWidth, into: destination)
        }
    }
}

/// The training transform of ImageNet-style folders: torchvision's
/// `RandomResizedCrop(size, scale, ratio)` followed by `RandomHorizontalFlip(0.5)`.
///
/// Crop parameters follow torchvision's `RandomResizedCrop.get_params`: up to 10 attempts of
/// `targetArea = H * W * U(scale)`, `aspect = exp(U(log ratio.lower, log ratio.upper))`,
/// `w = round(sqrt(targetArea * aspect))`, `h = round(sqrt(targetArea / aspect))` (round half to
/// even, as Python's `round`); the first attempt with `0 < w <= W` and `0 < h <= H` takes
/// `top = uniform in 0...H-h`, `left = uniform in 0...W-w`. If none fits, the fallback is the
/// whole image cropped centrally to the nearest allowed aspect ratio. The crop is then resized to
/// `size x size` with `Bilinear` (no antialiasing) and mirrored with probability 0.5.
///
/// Draws are keyed by (seed, epoch, global sample id), never by rank or world size:
/// generator `SplitMix64(seed: seed, stream: mix(mix(epoch ^ 0x727263) ^ id))`
/// (0x727263 = ASCII "rrc"); a uniform in [0, 1) is `(next() >> 11) * 2^-53`; per attempt the
/// draws are the scale uniform then the log-ratio uniform, then (on success) `top` and `left` by
/// `uniform(below:)`; the flip is the top bit of one more `next()`, drawn after the crop.
public struct RandomResizedCrop: Sendable, Equatable {
    public var size: Int
    /// Range of the crop's area as a fraction of the image area.
    public var scale: ClosedRange<Double>
    /// Range of the crop's aspect ratio (width / height).
    public var ratio: ClosedRange<Double>
    public var horizontalFlip: Bool
    public var seed: UInt64

    public init(size: Int, scale: ClosedRange<Double> = 0.08...1, ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3),
                horizontalFlip: Bool = true, seed: UInt64) {
        precondition(size >= 1, "RandomResizedCrop: size must be >= 1, got \(size)")
        precondition(scale.lowerBound > 0 && scale.upperBound <= 1,
                     "RandomResizedCrop: scale must lie in (0, 1], got \(scale)")
        precondition(ratio.lowerBound > 0, "RandomResizedCrop: ratio must be > 0, got \(ratio)")
        self.size = size
        self.scale = scale
        self.ratio = ratio
        self.horizontalFlip = horizontalFlip
        self.seed = seed
    }

    /// The crop window (in the source image) and the flip for one sample.
    public func parameters(id: Int, epoch: Int, height: Int, width: Int)
        -> (top: Int, left: Int, height: Int, width: Int, flip: Bool) {
        let stream = SplitMix64.mix(SplitMix64.mix(UInt64(bitPattern: Int64(epoch)) ^ 0x72_72_63) ^ UInt64(bitPattern: Int64(id)))
        var rng = SplitMix64(seed: seed, stream: stream)
        func unit() -> Double { Double(rng.next() >> 11) * 0x1p-53 }
        let area = Double(height * width)
        let logLo = log(ratio.lowerBound), logHi = log(ratio.upperBound)
        var window: (Int, Int, Int, Int)?
        for _ in 0..<10 {
            let target = area * (scale.lowerBound + (scale.upperBound - scale.lowerBound) * unit())
            let aspect = exp(logLo + (logHi - logLo) * unit())
            let w = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && w <= width && h > 0 && h <= height {
                let top = Int(rng.uniform(below: UInt64(height - h + 1)))
                let left = Int(rng.uniform(below: UInt64(width - w + 1)))
                window = (top, left, h, w)
                break
            }
        }
        if window == nil {
            let inRatio = Double(width) / Double(height)
            var w = width, h = height
            if inRatio < ratio.lowerBound {
                h = Int((Double(w) / ratio.lowerBound).rounded(.toNearestOrEven))
            } else if inRatio > ratio.upperBound {
                w = Int((Double(h) * ratio.upperBound).rounded(.toNearestOrEven))
            }
            window = ((height - h) / 2, (width - w) / 2, h, w)
        }
        let flip = rng.next() >> 63 == 1
        let (top, left, h, w) = window!
        return (top, left, h, w, horizontalFlip && flip)
    }

    /// Applies the transform to one image: `[C, size, size]`.
    public func apply(_ image: DecodedImage, id: Int, epoch: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: image.channels * size * size)
        out.withUnsafeMutableBufferPointer { apply(image, id: id, epoch: epoch, into: $0) }
        return out
    }

    /// Applies the transform into `destination`, `[C, size, size]`.
    public func apply(_ image: DecodedImage, id: Int, epoch: Int, into destination: UnsafeMutableBufferPointer<UInt8>) {
        let p = parameters(id: id, epoch: epoch, height: image.height, width: image.width)
        image.pixels.withUnsafeBufferPointer { src in
            Bilinear.resample(src, channels: image.channels, height: image.height, width: image.width,
                              cropTop: p.top, cropLeft: p.left, cropHeight: p.height, cropWidth: p.width,
                              resizedHeight: size, resizedWidth: size, outHeight: size, outWidth: size,
                              flip: p.flip, into: destination)
        }
    }
}

import XCTest
@testable import Datasets

/// Naive twin of `Bilinear`: resize the whole window pixel by pixel (PyTorch's
/// align_corners=False formula written out), then crop and flip the resized image.
private func naiveResizeCropFlip(_ image: DecodedImage, top: Int, left: Int, cropH: Int, cropW: Int,
                                 resizedH: Int, resizedW: Int, offY: Int, offX: Int, outH: Int, outW: Int,
                                 flip: Bool) -> [UInt8] {
    func px(_ c: Int, _ y: Int, _ x: Int) -> Float {
        Float(image.pixels[(c * image.height + top + y) * image.width + left + x])
    }
    // PyTorch computes the scale once (in / out) and then scale * (d + 0.5) - 0.5, in Float32.
    let scaleY = Float(cropH) / Float(resizedH), scaleX = Float(cropW) / Float(resizedW)
    var resized = [[[UInt8]]](repeating: [[UInt8]](repeating: [UInt8](repeating: 0, count: resizedW), count: resizedH), count: image.channels)
    for c in 0..<image.channels {
        for y in 0..<resizedH {
            var sy = scaleY * (Float(y) + 0.5) - 0.5
            if sy < 0 { sy = 0 }
            let y0 = Int(sy.rounded(.down)), y1 = min(y0 + 1, cropH - 1)
            let ly = sy - Float(y0)
            for x in 0..<resizedW {
                var sx = scaleX * (Float(x) + 0.5) - 0.5
                if sx < 0 { sx = 0 }
                let x0 = Int(sx.rounded(.down)), x1 = min(x0 + 1, cropW - 1)
                let lx = sx - Float(x0)
                let top = (1 - lx) * px(c, y0, x0) + lx * px(c, y0, x1)
                let bottom = (1 - lx) * px(c, y1, x0) + lx * px(c, y1, x1)
                let v = (1 - ly) * top + ly * bottom
                resized[c][y][x] = UInt8(min(max((v + 0.5).rounded(.down), 0), 255))
            }
        }
    }
    var out: [UInt8] = []
    for c in 0..<image.channels {
        for y in 0..<outH {
            var row: [UInt8] = []
            for x in 0..<outW {
                let ry = y + offY, rx = x + offX
                row.append(ry >= 0 && ry < resizedH && rx >= 0 && rx < resizedW ? resized[c][ry][rx] : 0)
            }
            out += flip ? row.reversed() : row
        }
    }
    return out
}

final class ImageTransformTests: XCTestCase {
    private func resize(_ pixels: [UInt8], h: Int, w: Int, toH: Int, toW: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: toH * toW)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                Bilinear.resample(src, channels: 1, height: h, width: w, cropTop: 0, cropLeft: 0, cropHeight: h, cropWidth: w,
                                  resizedHeight: toH, resizedWidth: toW, outHeight: toH, outWidth: toW, into: dst)
            }
        }
        return out
    }

    func testBilinearWorkedValues() {
        // torch.nn.functional.interpolate(x, size=4, mode="linear", align_corners=False) of [0, 100]
        // is [0, 25, 75, 100].
        XCTAssertEqual(resize([0, 100], h: 1, w: 2, toH: 1, toW: 4), [0, 25, 75, 100])
        // [0, 10, 20, 30] -> 2: source x = 0.5 and 2.5 -> [5, 25].
        XCTAssertEqual(resize([0, 10, 20, 30], h: 1, w: 4, toH: 1, toW: 2), [5, 25])
        // [0, 30, 60] -> 2: source x = 0.25, 1.75 -> 7.5, 52.5 -> rounded half up to 8, 53.
        XCTAssertEqual(resize([0, 30, 60], h: 1, w: 3, toH: 1, toW: 2), [8, 53])
        // 2x2 -> 1x1: the centre, the mean of the four.
        XCTAssertEqual(resize([0, 100, 200, 40], h: 2, w: 2, toH: 1, toW: 1), [85])
        // Same size is the identity.
        let p = ImageFixtures.pattern(channels: 1, height: 5, width: 7).pixels
        XCTAssertEqual(resize(p, h: 5, w: 7, toH: 5, toW: 7), p)
    }

    func testBilinearMatchesNaiveTwinWithCropOffsetAndFlip() {
        let image = ImageFixtures.pattern(channels: 3, height: 23, width: 31, salt: 5)
        let cases: [(Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Bool)] = [
            (0, 0, 23, 31, 32, 43, 0, 5, 32, 32, false),   // resize shorter to 32, centre-ish crop
            (3, 4, 17, 20, 16, 16, 0, 0, 16, 16, true),     // random-resized-crop style, flipped
            (2, 1, 20, 29, 9, 13, 0, 0, 9, 13, false),      // downscale
            (0, 0, 23, 31, 10, 13, -2, -1, 14, 15, true),   // crop larger than the image: zero padding
        ]
        for (t, l, ch, cw, rh, rw, oy, ox, oh, ow, flip) in cases {
            var out = [UInt8](repeating: 0, count: 3 * oh * ow)
            image.pixels.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    Bilinear.resample(src, channels: 3, height: 23, width: 31, cropTop: t, cropLeft: l, cropHeight: ch, cropWidth: cw,
                                      resizedHeight: rh, resizedWidth: rw, offsetY: oy, offsetX: ox, outHeight: oh, outWidth: ow,
                                      flip: flip, into: dst)
                }
            }
            let expected = naiveResizeCropFlip(image, top: t, left: l, cropH: ch, cropW: cw, resizedH: rh, resizedW: rw,
                                               offY: oy, offX: ox, outH: oh, outW: ow, flip: flip)
            XCTAssertEqual(out, expected, "case \((t, l, ch, cw, rh, rw, oy, ox, oh, ow, flip))")
        }
    }

    func testResizeCenterCropSizesAndOffsetsFollowTorchvision() {
        let t = ResizeCenterCrop(resizeShorterSide: 256, cropSize: 224)
        // Resize(256) of a 375x500 (HxW) image: 256 x int(256 * 500 / 375) = 256 x 341.
        XCTAssertTrue(t.resizedSize(height: 375, width: 500) == (256, 341))
        XCTAssertTrue(t.resizedSize(height: 500, width: 333) == (384, 256))
        // CenterCrop top = round((h - crop) / 2) with round-half-to-even: (341-224)/2 = 58.5 -> 58.
        XCTAssertEqual(ResizeCenterCrop.cropOffset(size: 341, crop: 224), 58)
        XCTAssertEqual(ResizeCenterCrop.cropOffset(size: 343, crop: 224), 60)   // 59.5 -> 60
        XCTAssertEqual(ResizeCenterCrop.cropOffset(size: 256, crop: 224), 16)
        XCTAssertEqual(ResizeCenterCrop.cropOffset(size: 28, crop: 32), -2)     // padded 2 above
        XCTAssertEqual(ResizeCenterCrop.cropOffset(size: 27, crop: 32), -2)     // (32-27)//2 = 2

        // Applying it equals the naive twin of resize-then-crop.
        let image = ImageFixtures.pattern(channels: 1, height: 30, width: 45)
        let small = ResizeCenterCrop(resizeShorterSide: 20, cropSize: 16)
        let expected = naiveResizeCropFlip(image, top: 0, left: 0, cropH: 30, cropW: 45, resizedH: 20, resizedW: 30,
                                           offY: 2, offX: 7, outH: 16, outW: 16, flip: false)
        XCTAssertEqual(small.apply(image), expected)
        // Identity when resize and crop equal the image size.
        let same = ImageFixtures.pattern(channels: 3, height: 32, width: 32)
        XCTAssertEqual(ResizeCenterCrop(resizeShorterSide: 32, cropSize: 32).apply(same), same.pixels)
    }

    func testRandomResizedCropIsDeterministicPerSeedEpochIdAndWithinBounds() {
        let rrc = RandomResizedCrop(size: 24, seed: 7)
        var areas: [Double] = []
        var flips = 0
        for id in 0..<2000 {
            let p = rrc.parameters(id: id, epoch: 3, height: 120, width: 160)
            let q = rrc.parameters(id: id, epoch: 3, height: 120, width: 160)
            XCTAssertTrue(p == q, "same key, same draws")
            XCTAssertTrue(p.top >= 0 && p.left >= 0 && p.height >= 1 && p.width >= 1
                          && p.top + p.height <= 120 && p.left + p.width <= 160, "\(p)")
            areas.append(Double(p.height * p.width) / (120 * 160))
            let aspect = Double(p.width) / Double(p.height)
            XCTAssertTrue(aspect > 0.7 && aspect < 1.45, "aspect \(aspect) outside the ratio range (with rounding)")
            if p.flip { flips += 1 }
        }
        // Area fraction: U(0.08, 1) per attempt, but large crops of extreme aspect do not fit a
        // 120x160 image and are redrawn; a pure-Python simulation of torchvision's get_params
        // (200k draws, random.uniform) gives a mean of 0.4344 (sd of the mean here ~0.006).
        let mean = areas.reduce(0, +) / Double(areas.count)
        XCTAssertEqual(mean, 0.434, accuracy: 0.02)
        XCTAssertLessThan(areas.min()!, 0.1)
        XCTAssertGreaterThan(areas.max()!, 0.9)
        XCTAssertEqual(Double(flips) / 2000, 0.5, accuracy: 0.05)
        // Different epochs, ids and seeds give different draws.
        let a = rrc.parameters(id: 5, epoch: 0, height: 120, width: 160)
        XCTAssertFalse(a == rrc.parameters(id: 5, epoch: 1, height: 120, width: 160))
        XCTAssertFalse(a == rrc.parameters(id: 6, epoch: 0, height: 120, width: 160))
        XCTAssertFalse(a == RandomResizedCrop(size: 24, seed: 8).parameters(id: 5, epoch: 0, height: 120, width: 160))
        // No flip when flipping is off, same crop.
        let noFlip = RandomResizedCrop(size: 24, horizontalFlip: false, seed: 7)
        for id in 0..<50 {
            let p = noFlip.parameters(id: id, epoch: 3, height: 120, width: 160)
            let q = rrc.parameters(id: id, epoch: 3, height: 120, width: 160)
            XCTAssertFalse(p.flip)
            XCTAssertTrue((p.top, p.left, p.height, p.width) == (q.top, q.left, q.height, q.width))
        }
    }

    func testRandomResizedCropFallbackIsTheCentralCropAtTheNearestRatio() {
        // A 1x100 strip: no attempt fits (h = round(sqrt(area / aspect)) >= 2 > 1), so the
        // fallback takes h = 1, w = round(1 * 4/3) = 1, centred: left = (100 - 1) / 2 = 49.
        let rrc = RandomResizedCrop(size: 4, seed: 1)
        for id in 0..<20 {
            let p = rrc.parameters(id: id, epoch: 0, height: 1, width: 100)
            XCTAssertTrue((p.top, p.left, p.height, p.width) == (0, 49, 1, 1), "\(p)")
        }
        // A tall 90x3 strip: w = 3, h = round(3 / (3/4)) = 4, top = (90 - 4) / 2 = 43.
        let q = rrc.parameters(id: 0, epoch: 0, height: 90, width: 3)
        XCTAssertTrue((q.top, q.left, q.height, q.width) == (43, 0, 4, 3), "\(q)")
    }

    func testRandomResizedCropApplyEqualsNaiveTwinOfItsParameters() {
        let image = ImageFixtures.pattern(channels: 3, height: 40, width: 50, salt: 2)
        let rrc = RandomResizedCrop(size: 16, seed: 11)
        for id in 0..<10 {
            let p = rrc.parameters(id: id, epoch: 2, height: 40, width: 50)
            let expected = naiveResizeCropFlip(image, top: p.top, left: p.left, cropH: p.height, cropW: p.width,
                                               resizedH: 16, resizedW: 16, offY: 0, offX: 0, outH: 16, outW: 16, flip: p.flip)
            XCTAssertEqual(rrc.apply(image, id: id, epoch: 2), expected, "id \(id)")
        }
    }
}

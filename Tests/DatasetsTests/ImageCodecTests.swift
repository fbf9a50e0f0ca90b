import Foundation
import XCTest
@testable import Datasets

/// Helpers shared by the image tests: a fresh temporary directory and image writers.
enum ImageFixtures {
    /// A new directory, removed when `test` ends.
    static func temporaryDirectory(_ test: XCTestCase, _ name: String = #function) throws -> String {
        let base = NSTemporaryDirectory() + "umtrain-image-tests-\(getpid())-\(UUID().uuidString.prefix(8))-"
            + name.filter { $0.isLetter || $0.isNumber }
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: base) }
        return base
    }

    /// A smooth, non-symmetric test pattern, `[channels, height, width]`.
    static func pattern(channels: Int, height: Int, width: Int, salt: Int = 0) -> DecodedImage {
        var pixels = [UInt8](repeating: 0, count: channels * height * width)
        for c in 0..<channels {
            for y in 0..<height {
                for x in 0..<width {
                    pixels[(c * height + y) * width + x] = UInt8((x * 255 / max(width - 1, 1) + y * 37 / max(height, 1) + c * 60 + salt * 13) % 256)
                }
            }
        }
        return DecodedImage(pixels: pixels, channels: channels, height: height, width: width)
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func writePNG(_ image: DecodedImage, to path: String) throws {
        try write(try ImageEncoder.png(image), to: path)
    }

    static func writeJPEG(_ image: DecodedImage, to path: String, quality: Int = 95) throws {
        try write(try ImageEncoder.jpeg(image, quality: quality), to: path)
    }
}

final class ImageCodecTests: XCTestCase {
    func testPNGRoundTripIsExactForGrayAndRGB() throws {
        let dir = try ImageFixtures.temporaryDirectory(self)
        for channels in [1, 3] {
            let image = ImageFixtures.pattern(channels: channels, height: 7, width: 11)
            let path = dir + "/p\(channels).png"
            try ImageFixtures.writePNG(image, to: path)
            let decoded = try ImageDecoder.decodeFile(path)
            XCTAssertEqual(decoded, image, "channels \(channels)")
        }
    }

    func testJPEGRoundTripIsCloseAndKeepsColourType() throws {
        let dir = try ImageFixtures.temporaryDirectory(self)
        for channels in [1, 3] {
            var smooth = [UInt8](repeating: 0, count: channels * 32 * 48)
            for c in 0..<channels { for y in 0..<32 { for x in 0..<48 { smooth[(c * 32 + y) * 48 + x] = UInt8(x * 3 + y * 2 + c * 20) } } }
            let image = DecodedImage(pixels: smooth, channels: channels, height: 32, width: 48)
            let path = dir + "/j\(channels).jpg"
            try ImageFixtures.writeJPEG(image, to: path, quality: 98)
            let decoded = try ImageDecoder.decodeFile(path)
            XCTAssertEqual(decoded.channels, channels)
            XCTAssertEqual(decoded.height, 32)
            XCTAssertEqual(decoded.width, 48)
            let meanError = zip(decoded.pixels, image.pixels).map { abs(Double($0) - Double($1)) }.reduce(0, +)
                / Double(image.pixels.count)
            XCTAssertLessThan(meanError, 3.0, "channels \(channels): lossy, but close at quality 98")
        }
        // Channel order: a pure red image stays red.
        var red = [UInt8](repeating: 0, count: 3 * 16 * 16)
        for i in 0..<256 { red[i] = 255 }
        let decodedRed = try ImageDecoder.decode(try ImageEncoder.jpeg(DecodedImage(pixels: red, channels: 3, height: 16, width: 16)), path: "red")
        XCTAssertGreaterThan(decodedRed.pixels[0], 245)
        XCTAssertLessThan(decodedRed.pixels[256], 10)
        XCTAssertLessThan(decodedRed.pixels[512], 10)
        // A constant gray image survives JPEG exactly (only the DC coefficient is non-zero).
        let flat = DecodedImage(pixels: [UInt8](repeating: 77, count: 16 * 16), channels: 1, height: 16, width: 16)
        XCTAssertEqual(try ImageDecoder.decode(try ImageEncoder.jpeg(flat, quality: 90), path: "flat"), flat)
    }

    func testPILLumaWorkedValues() {
        // PIL: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0))
        XCTAssertEqual(Luma.pil(255, 0, 0), 76)
        XCTAssertEqual(Luma.pil(0, 255, 0), 150)
        XCTAssertEqual(Luma.pil(0, 0, 255), 29)
        XCTAssertEqual(Luma.pil(255, 255, 255), 255)
        XCTAssertEqual(Luma.pil(0, 0, 0), 0)
        // Naive twin: the rounded 601-2 formula, over a grid of colours.
        for r in stride(from: 0, through: 255, by: 15) {
            for g in stride(from: 0, through: 255, by: 17) {
                for b in stride(from: 0, through: 255, by: 51) {
                    let exact = Double(r) * 0.299 + Double(g) * 0.587 + Double(b) * 0.114
                    let got = Double(Luma.pil(UInt8(r), UInt8(g), UInt8(b)))
                    XCTAssertLessThanOrEqual(abs(got - exact), 0.51, "rgb (\(r), \(g), \(b))")
                }
            }
        }
    }

    func testChannelConversionOnDecode() throws {
        let rgb = DecodedImage(pixels: [255, 0, 10, /* G */ 0, 255, 20, /* B */ 0, 0, 30], channels: 3, height: 1, width: 3)
        let png = try ImageEncoder.png(rgb)
        let gray = try ImageDecoder.decode(png, path: "x.png", channels: 1)
        XCTAssertEqual(gray.pixels, [76, 150, Luma.pil(10, 20, 30)])
        let grayImage = DecodedImage(pixels: [3, 200], channels: 1, height: 1, width: 2)
        let replicated = try ImageDecoder.decode(try ImageEncoder.png(grayImage), path: "g.png", channels: 3)
        XCTAssertEqual(replicated.pixels, [3, 200, 3, 200, 3, 200])
        XCTAssertEqual(Luma.convert(rgb, channels: 1).pixels, gray.pixels)
        XCTAssertEqual(Luma.convert(grayImage, channels: 3), replicated)
    }

    func testFormatIsDetectedFromBytesNotExtension() throws {
        let dir = try ImageFixtures.temporaryDirectory(self)
        let image = ImageFixtures.pattern(channels: 3, height: 5, width: 6)
        let path = dir + "/actually-a-png.jpg"
        try ImageFixtures.writePNG(image, to: path)
        XCTAssertEqual(try ImageDecoder.decodeFile(path), image)
    }

    func testTextFileNamedJPGIsNotAnImage() throws {
        let dir = try ImageFixtures.temporaryDirectory(self)
        let path = dir + "/notes.jpg"
        try "hello world\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ImageDecoder.decodeFile(path)) { error in
            XCTAssertEqual(error as? ImageFileError, .notAnImage(path: path, found: "bytes 68 65 6C 6C 6F 20 77 6F"))
            XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("Hint:"), "\(error)")
        }
        let empty = dir + "/empty.png"
        try ImageFixtures.write([], to: empty)
        XCTAssertThrowsError(try ImageDecoder.decodeFile(empty)) { error in
            XCTAssertEqual(error as? ImageFileError, .notAnImage(path: empty, found: "an empty file"))
        }
    }

    func testTruncatedPNGAndJPEGThrowCorruptImage() throws {
        let dir = try ImageFixtures.temporaryDirectory(self)
        let image = ImageFixtures.pattern(channels: 3, height: 40, width: 40)
        for (format, bytes) in [("PNG", try ImageEncoder.png(image)), ("JPEG", try ImageEncoder.jpeg(image))] {
            let path = dir + "/truncated." + format.lowercased()
            try ImageFixtures.write(Array(bytes.prefix(bytes.count / 2)), to: path)
            XCTAssertThrowsError(try ImageDecoder.decodeFile(path), format) { error in
                guard case let .corruptImage(p, f, message)? = error as? ImageFileError else {
                    return XCTFail("\(format): expected corruptImage, got \(error)")
                }
                XCTAssertEqual(p, path)
                XCTAssertEqual(f, format)
                XCTAssertFalse(message.isEmpty)
            }
        }
        // A JPEG cut right after its signature fails in the header, not with exit().
        XCTAssertThrowsError(try ImageDecoder.decode([0xFF, 0xD8, 0xFF, 0xE0, 0, 16], path: "stub.jpg")) { error in
            guard case .corruptImage? = error as? ImageFileError else { return XCTFail("\(error)") }
        }
    }

    func testMissingFileIsCannotRead() {
        XCTAssertThrowsError(try ImageDecoder.decodeFile("/nonexistent/dir/x.png")) { error in
            guard case let .cannotRead(path, _)? = error as? DatasetError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "/nonexistent/dir/x.png")
        }
    }

    func testSixteenBitPNGKeepsTheHighByte() throws {
        // Written by Pillow: Image.fromarray(uint16 [[0, 2570, 32896, 65535, 1000, 30000]]).save(f, "PNG")
        // (mode I;16, no gAMA chunk). High bytes: 0, 10, 128, 255, 3, 117.
        let hex = "89504e470d0a1a0a0000000d494844520000000600000001100000000088325c6f0000001549444154789c636060e0e26a68f8ff9ff945a90100171e04a32dd217980000000049454e44ae426082"
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            bytes.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        let image = try ImageDecoder.decode(bytes, path: "g16.png")
        XCTAssertEqual(image.channels, 1)
        XCTAssertEqual(image.pixels, [0, 10, 128, 255, 3, 117])
        XCTAssertEqual(try ImageDecoder.decode(bytes, path: "g16.png", channels: 3).pixels,
                       [0, 10, 128, 255, 3, 117, 0, 10, 128, 255, 3, 117, 0, 10, 128, 255, 3, 117])
    }
}

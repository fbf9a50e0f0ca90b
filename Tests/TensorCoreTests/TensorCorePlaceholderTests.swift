import XCTest
@testable import TensorCore

final class TensorCorePlaceholderTests: XCTestCase {
    func testModuleLinks() { XCTAssertTrue(true) }
}
